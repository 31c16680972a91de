import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FilterPool, walSegmentStartLsn, zstdDecompressBuffer } from '@openrds/common';
import type { AgentGatewayClient } from '@openrds/common';
import type { WalFlushed } from './pg-connect';
import { WalStreamer, lookAfter } from './wal-stream';

const SEG = 16 * 1024 * 1024;
const PAGE = 8192;
const MiB = 1024 * 1024;
const seg = (n: number): string => `00000001000000000000000${n.toString(16).toUpperCase()}`;

interface StageCall { walName: string; offset: number; size: number; data: Buffer }

// The repo-server is a fake that takes every part in order (this tests which bytes the stream
// stages and when, not the transport); the files, the pool and zstd are real.
describe('WalStreamer', () => {
  let dir: string;
  let pool: FilterPool;
  let calls: StageCall[];
  let flushed: WalFlushed | undefined;
  let streamer: WalStreamer;
  /** When set, a stage call's answer waits until the test gives it. */
  let held: (() => void)[] | undefined;
  /** A stage call at this offset fails (the repo-server unreachable). */
  let failAt: number | undefined;
  const client = {
    archiveStage: (req: StageCall, _opts: unknown, cb: (err: Error | null, r?: { staged: number }) => void) => {
      calls.push(req);
      const answer = (): void => (failAt === req.offset ? cb(Object.assign(new Error('14 UNAVAILABLE: gone'), { code: 14 })) : cb(null, { staged: req.offset + req.size }));
      if (held) held.push(answer);
      else answer();
    },
  } as unknown as AgentGatewayClient;
  const tick = (): Promise<boolean> => (streamer as unknown as { tick(): Promise<boolean> }).tick();
  /** Ticks while the stream has more, each tick's stage calls settled before the next. */
  const ticks = async (): Promise<void> => {
    for (let more = true; more;) {
      more = await tick();
      await streamer.settled();
    }
  };
  const file = (n: number): Buffer => fs.readFileSync(path.join(dir, 'pg_wal', seg(n)));
  /** What the fake repo-server holds of a segment: its parts decompressed, in order. */
  const stagedOf = (name: string): Buffer => Buffer.concat(calls.filter((c) => c.walName === name).map((c) => zstdDecompressBuffer(c.data, c.size)));
  const at = (n: number, offset: number): WalFlushed => ({ name: seg(n), lsn: walSegmentStartLsn(seg(n), SEG) + BigInt(offset) });
  /** A push's take, as the daemon runs it: inside hold (a staged push keeps the stream still until it is done). */
  const pushTake = (name: string): ReturnType<WalStreamer['take']> => streamer.hold(() => streamer.take(name));

  beforeAll(() => { pool = new FilterPool(); });
  afterAll(async () => { await pool.close(); });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wal-stream-'));
    fs.mkdirSync(path.join(dir, 'pg_wal', 'archive_status'), { recursive: true });
    calls = [];
    held = undefined;
    failAt = undefined;
    flushed = undefined;
    streamer = new WalStreamer({
      client, pool, pgPath: dir, stanza: 's', agentId: 'a', walSegmentSize: SEG, pageSize: PAGE, compressLevel: 1, timeoutMs: 10_000,
      plain: async () => true, flushed: async () => flushed,
    });
  });
  afterEach(() => { streamer.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

  it('flush mode: stages only what PostgreSQL flushed, finishes a segment the position left, and its push has nothing to compare', async () => {
    for (const n of [1, 2]) fs.writeFileSync(path.join(dir, 'pg_wal', seg(n)), crypto.randomBytes(SEG));
    // Flushed to 5 MiB and 100 bytes: staged to the page before it.
    flushed = at(1, 5 * MiB + 100);
    await ticks();
    expect(stagedOf(seg(1)).equals(file(1).subarray(0, 5 * MiB))).toBe(true);
    // The position moved into the next segment: the first is staged to its end, then the next begins.
    flushed = at(2, MiB);
    await ticks();
    expect(stagedOf(seg(1)).equals(file(1))).toBe(true);
    expect(stagedOf(seg(2)).equals(file(2).subarray(0, MiB))).toBe(true);
    const first = await pushTake(seg(1));
    expect(first?.size).toBe(SEG);
    expect(first?.bytes).toBeUndefined();
    expect(first?.hash.digest('hex')).toBe(crypto.createHash('sha256').update(file(1)).digest('hex'));
    expect(await pushTake(seg(1))).toBeUndefined();
    // At a segment's very end the position still names it: staged whole once, waiting for its
    // push, and not again once taken.
    flushed = at(2, SEG);
    await ticks();
    await ticks();
    expect(stagedOf(seg(2)).equals(file(2))).toBe(true);
    expect((await pushTake(seg(2)))?.size).toBe(SEG);
    const before = calls.length;
    await ticks();
    expect(calls.length).toBe(before);
    // A segment the stream never began, with the position at its end (a switch while the stream
    // rested): finished, its push comes whatever is staged; nothing is begun for it.
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(3)), crypto.randomBytes(SEG));
    flushed = at(3, SEG);
    await ticks();
    expect(calls.length).toBe(before);
  });

  it('flush mode: a push names the part whose stage call is under way without waiting for its answer, and no part follows it', async () => {
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(1)), crypto.randomBytes(SEG));
    flushed = at(1, 12 * MiB);
    await ticks();
    // 3 MiB more flushed: two parts (2 MiB, 1 MiB), sent one after the other; the first one's answer is held.
    flushed = at(1, 15 * MiB);
    held = [];
    const ticking = tick();
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    // The push has its start at once: the repo-server waits for the part on its way.
    const prefix = await streamer.take(seg(1));
    expect(prefix?.size).toBe(14 * MiB);
    expect(prefix?.hash.digest('hex')).toBe(crypto.createHash('sha256').update(file(1).subarray(0, 14 * MiB)).digest('hex'));
    held.shift()!();
    await ticking;
    await streamer.settled();
    // The part after it is not sent (the push sends those bytes): six parts of 2 MiB, then the one held.
    expect(calls.length).toBe(7);
  });

  it('flush mode: a staged push keeps the stream still until it is done', async () => {
    for (const n of [1, 2]) fs.writeFileSync(path.join(dir, 'pg_wal', seg(n)), crypto.randomBytes(SEG));
    flushed = at(1, 5 * MiB);
    await ticks();
    flushed = at(2, MiB);
    await ticks();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let onTaken!: () => void;
    const taken = new Promise<void>((resolve) => { onTaken = resolve; });
    const push = streamer.hold(async () => {
      const prefix = await streamer.take(seg(1));
      onTaken();
      await gate;
      return prefix;
    });
    await taken;
    // PostgreSQL wrote on meanwhile: nothing is staged beside the push.
    flushed = at(2, 3 * MiB);
    const before = calls.length;
    await ticks();
    expect(calls.length).toBe(before);
    release();
    expect((await push)?.size).toBe(SEG);
    await ticks();
    expect(stagedOf(seg(2)).equals(file(2).subarray(0, 3 * MiB))).toBe(true);
  });

  it('flush mode: a part read as PostgreSQL finishes its segment is not sent (the push sends those bytes)', async () => {
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(1)), crypto.randomBytes(SEG));
    flushed = at(1, 14 * MiB);
    await ticks();
    const before = calls.length;
    // The segment is finished (its .ready is there) by the time the next part is compressed.
    fs.writeFileSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(1)}.ready`), '');
    flushed = at(1, 15 * MiB);
    await ticks();
    expect(calls.length).toBe(before);
    const prefix = await pushTake(seg(1));
    expect(prefix?.size).toBe(14 * MiB);
    expect(prefix?.hash.digest('hex')).toBe(crypto.createHash('sha256').update(file(1).subarray(0, 14 * MiB)).digest('hex'));
  });

  it('flush mode: looks at the flush position ~13 times for a segment written at an even rate, closer together near its end', () => {
    // 16 MiB written at 6.4 MiB/s (an OLTP load on the bench box): each look at the time lookAfter gives.
    const rate = 6.4 * MiB / 1000;
    let written = 0;
    const unwrittenAtLooks: number[] = [];
    while (written < SEG) {
      unwrittenAtLooks.push(SEG - written);
      written += lookAfter(SEG - written, rate) * rate;
    }
    expect(unwrittenAtLooks.length).toBeGreaterThanOrEqual(8);
    expect(unwrittenAtLooks.length).toBeLessThanOrEqual(14);
    // The last look before the end leaves little for the push (~20 ms of WAL), and steps shrink as the end nears.
    expect(unwrittenAtLooks[unwrittenAtLooks.length - 1]).toBeLessThanOrEqual(256 * 1024);
    expect(unwrittenAtLooks.filter((u) => u <= 2 * MiB).length).toBeGreaterThanOrEqual(4);
    // Bounds: no rate known yet, a bulk load, a trickle.
    expect(lookAfter(10 * MiB, 0)).toBe(100);
    expect(lookAfter(MiB, 0)).toBe(20);
    expect(lookAfter(10 * MiB, 120 * MiB / 1000)).toBe(20);
    expect(lookAfter(10 * MiB, 1)).toBe(300);
    expect(lookAfter(MiB, 1)).toBe(50);
  });

  it('flush mode: far from a segment\'s end a part waits for a MiB; within 2 MiB of it, parts go from 64 KiB', async () => {
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(1)), crypto.randomBytes(SEG));
    flushed = at(1, MiB);
    await ticks();
    expect(calls.map((c) => c.size)).toEqual([MiB]);
    // Half a MiB more, 14.5 MiB before the end: it waits.
    flushed = at(1, MiB + 512 * 1024);
    await ticks();
    expect(calls.length).toBe(1);
    flushed = at(1, 2 * MiB);
    await ticks();
    expect(calls.map((c) => c.size)).toEqual([MiB, MiB]);
    // Near the end: 128 KiB are staged at once.
    flushed = at(1, 14 * MiB + 128 * 1024);
    await ticks();
    flushed = at(1, 14 * MiB + 256 * 1024);
    await ticks();
    expect(calls[calls.length - 1]!.size).toBe(128 * 1024);
    expect(stagedOf(seg(1)).equals(file(1).subarray(0, 14 * MiB + 256 * 1024))).toBe(true);
  });

  it('flush mode: reads the next part while the parts before are staged, stages them in order, and no more than four ahead', async () => {
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(1)), crypto.randomBytes(SEG));
    held = [];
    flushed = at(1, 4 * MiB);
    await tick();
    // The first tick's two parts are on their way (the first call's answer held): the next tick reads two more.
    flushed = at(1, 8 * MiB);
    await tick();
    const waitCalls = async (n: number): Promise<void> => { while (calls.length < n) await new Promise((resolve) => setTimeout(resolve, 5)); };
    await waitCalls(1);
    // Four parts on their way: the next tick reads nothing.
    flushed = at(1, 12 * MiB);
    expect(await tick()).toBe(false);
    for (let n = 1; n <= 4; n++) {
      await waitCalls(n);
      expect(calls.length).toBe(n);
      held.shift()!();
    }
    await streamer.settled();
    expect(calls.map((c) => c.offset)).toEqual([0, 2 * MiB, 4 * MiB, 6 * MiB]);
    expect(stagedOf(seg(1)).equals(file(1).subarray(0, 8 * MiB))).toBe(true);
    held = undefined;
    await ticks();
    expect(stagedOf(seg(1)).equals(file(1).subarray(0, 12 * MiB))).toBe(true);
  });

  it('flush mode: a stage call that fails stops the parts after it, and the push of that segment goes whole', async () => {
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(1)), crypto.randomBytes(SEG));
    flushed = at(1, 8 * MiB);
    await ticks();
    failAt = 10 * MiB;
    flushed = at(1, 16 * MiB - PAGE);
    await ticks();
    // The part at 8 MiB staged, the one at 10 MiB refused, none after it.
    expect(calls.map((c) => c.offset).slice(-2)).toEqual([8 * MiB, 10 * MiB]);
    expect(await streamer.take(seg(1))).toBeUndefined();
  });

  it('flush mode: a push that finds its segment far behind takes nothing, and a few in a row rest the stream', async () => {
    for (const n of [1, 2, 3, 4]) fs.writeFileSync(path.join(dir, 'pg_wal', seg(n)), Buffer.alloc(SEG, n));
    for (const n of [1, 2, 3]) {
      flushed = at(n, 2 * MiB);
      await ticks();
      expect(stagedOf(seg(n)).length).toBe(2 * MiB);
      // 14 MiB left: pushed whole rather than staged.
      expect(await streamer.take(seg(n))).toBeUndefined();
    }
    flushed = at(4, 2 * MiB);
    const before = calls.length;
    expect(await tick()).toBe(false);
    expect(calls.length).toBe(before);
  });

  it('header mode (no flush position): stages the pages before the last valid one, and keeps them for the push to compare', async () => {
    // The first 14 MiB written by PostgreSQL (valid page headers), the rest a preallocated segment's zeros.
    const bytes = Buffer.alloc(SEG);
    const start = walSegmentStartLsn(seg(1), SEG);
    const written = 14 * MiB;
    crypto.randomFillSync(bytes, 0, written);
    for (let p = 0; p < written; p += PAGE) {
      bytes.writeUInt16LE(0xd110, p);
      bytes.writeUInt16LE(p === 0 ? 0x0002 : 0, p + 2);
      bytes.writeBigUInt64LE(start + BigInt(p), p + 8);
    }
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(1)), bytes);
    // The segment PostgreSQL writes is the one after the newest finished one.
    fs.writeFileSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(0)}.done`), '');
    await ticks();
    // Every page but the last written one (PostgreSQL may still add to it).
    const finished = written - PAGE;
    expect(stagedOf(seg(1)).equals(bytes.subarray(0, finished))).toBe(true);
    const prefix = await streamer.take(seg(1));
    expect(prefix?.size).toBe(finished);
    expect(prefix?.bytes?.equals(bytes.subarray(0, finished))).toBe(true);
  });
});
