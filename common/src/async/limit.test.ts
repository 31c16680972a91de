import { KeyedMutex, forEachLimit, sleep } from './limit';

describe('forEachLimit', () => {
  it('never runs more than the limit at once and visits every item', async () => {
    let running = 0, peak = 0;
    const seen: number[] = [];
    await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++; peak = Math.max(peak, running);
      await sleep(5);
      seen.push(n);
      running--;
    });
    expect(peak).toBe(3);
    expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('rejects with the first failure and starts no new work after it', async () => {
    const started: number[] = [];
    await expect(forEachLimit([1, 2, 3, 4], 1, async (n) => {
      started.push(n);
      if (n === 2) throw new Error('boom 2');
    })).rejects.toThrow('boom 2');
    expect(started).toEqual([1, 2]);
  });
});

describe('KeyedMutex', () => {
  it('serializes work for one key and lets other keys run', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    await Promise.all([
      m.run('a', async () => { await sleep(20); order.push('a1'); }),
      m.run('a', async () => { order.push('a2'); }),
      m.run('b', async () => { order.push('b1'); }),
    ]);
    expect(order).toEqual(['b1', 'a1', 'a2']);
  });
});
