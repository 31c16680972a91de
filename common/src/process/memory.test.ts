import { MemoryGovernor, memorySettle } from './memory';

const MB = 1024 * 1024;

describe('MemoryGovernor', () => {
  it('collects only over the soft RSS limit and after enough growth', () => {
    let rss = 100 * MB, size = 50 * MB, collected = 0;
    const g = new MemoryGovernor({ softRssBytes: 200 * MB, growthBytes: 32 * MB, measure: () => ({ rss, size }), collect: () => { collected++; size = 40 * MB; } });
    // Growth, but under the soft limit.
    size = 150 * MB;
    expect(g.tick()).toBe(false);
    // Over the limit and grown since the mark (0): collects, mark = 40 MB after the collection.
    rss = 250 * MB;
    expect(g.tick()).toBe(true);
    expect(collected).toBe(1);
    // Over the limit, grown by less than 32 MB since the collection.
    size = 60 * MB;
    expect(g.tick()).toBe(false);
    size = 80 * MB;
    expect(g.tick()).toBe(true);
    expect(g.collections).toBe(2);
  });

  it('counts growth from where V8 shrank the heap itself', () => {
    const rss = 300 * MB;
    let size = 100 * MB;
    const g = new MemoryGovernor({ softRssBytes: 200 * MB, growthBytes: 32 * MB, measure: () => ({ rss, size }), collect: () => { size = 90 * MB; } });
    expect(g.tick()).toBe(true); // mark 90
    size = 20 * MB;
    expect(g.tick()).toBe(false); // mark 20
    size = 60 * MB;
    expect(g.tick()).toBe(true); // 40 MB over the lowered mark
  });

  it('collects once after work ends when the heap grew, whatever the RSS; not when it did not', async () => {
    const rss = 10 * MB;
    let size = 100 * MB, collected = 0;
    const g = new MemoryGovernor({ softRssBytes: 200 * MB, settleBytes: 8 * MB, settleDelayMs: 10, intervalMs: 60_000,
      measure: () => ({ rss, size }), collect: () => { collected++; size = 30 * MB; } }).start();
    try {
      // A burst of endings: one collection.
      memorySettle();
      expect(g.settleSoon()).toBe(false);
      await new Promise((r) => setTimeout(r, 50));
      expect(collected).toBe(1);
      // Grown by less than settleBytes since: none.
      size = 35 * MB;
      memorySettle();
      await new Promise((r) => setTimeout(r, 50));
      expect(collected).toBe(1);
      size = 40 * MB;
      memorySettle();
      await new Promise((r) => setTimeout(r, 50));
      expect(collected).toBe(2);
    } finally {
      g.stop();
    }
    // Stopped: no governor to tell.
    expect(MemoryGovernor.active).toBeUndefined();
  });

  it('collects at the end of a phase only when the heap grew since the last collection', () => {
    let size = 100 * MB, collected = 0;
    const g = new MemoryGovernor({ softRssBytes: 500 * MB, settleBytes: 8 * MB, measure: () => ({ rss: 10 * MB, size }), collect: () => { collected++; size = 50 * MB; } });
    expect(g.collectIfGrown()).toBe(true);
    size = 55 * MB;
    expect(g.collectIfGrown()).toBe(false);
    size = 60 * MB;
    expect(g.collectIfGrown()).toBe(true);
    expect(collected).toBe(2);
  });

  it('runs V8 collections for real', () => {
    const g = new MemoryGovernor({ softRssBytes: 0, growthBytes: 0 });
    expect(g.tick()).toBe(true);
    expect(g.collections).toBe(1);
  });
});
