import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArchiveStageMissingError, errorFromGrpc, grpcDeadline, log, walSegmentNext, walSegmentStartLsn } from '@openrds/common';
import type { AgentGatewayClient, ArchiveStageResult__Output, FilterPool } from '@openrds/common';

/**
 * WAL pre-streaming (`archive-push-stream`): while PostgreSQL writes a segment, the daemon sends
 * its finished pages to the repo-server ahead (ArchiveStage), so that when the segment is ready
 * its push carries only the last pages, and archive_command returns in milliseconds instead of
 * the time it takes to compress and store 16 MiB.
 *
 * A page is finished when the page after it has been written: its header is valid (xlp_magic of
 * the segment's first page, xlp_pageaddr the page's own LSN; a recycled segment still holds an
 * older address, a preallocated one zeros). The pages are read again after that check, so what
 * is staged is what PostgreSQL wrote before the later page. The push checks once more: it reads
 * the finished segment and compares its start with the staged bytes, and pushes the whole file
 * when they differ, when the repo-server lost the stage, or when streaming is off.
 */

/** Uncompressed bytes sent in one part at most (the repo-server takes up to 4 MiB). */
const PART = 1024 * 1024;
/** Finished bytes taken in one step at most, as parts compressed side by side. */
const READ_MAX = 4 * PART;
/** Fewer finished bytes than this wait for the next tick (unless the segment is nearly done). */
const PART_MIN = 64 * 1024;
/** After a refusal other than a lost stage (an encrypted or multi-repo server, an older server): this long without streaming. */
const PAUSE_MS = 60_000;
/** How often the segment PostgreSQL writes is looked at (at once again after a full read: the stream is behind). */
const TICK_MS = 20;
/** A finished segment's status file: the segment PostgreSQL writes is the one after the newest. */
const STATUS_RE = /^([0-9A-F]{24})\.(?:ready|done)$/;

/** The staged start of a segment, as the push needs it. */
export interface StagedPrefix {
  /** Uncompressed bytes the repo-server holds. */
  size: number;
  /** Those bytes, to compare with the finished file. */
  bytes: Buffer;
  /** sha256 over them, to continue over the rest (a copy: update it freely). */
  hash: crypto.Hash;
}

interface Current {
  name: string;
  start: bigint;
  /** The segment's bytes as staged so far (bytes [0, staged)). */
  buf: Buffer;
  staged: number;
  hash: crypto.Hash;
  magic: number;
}

export class WalStreamer {
  private cur: Current | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private pausedUntil = 0;
  /** Pushes under way: the stream waits for them, so that their compression does not queue behind its parts on the pool. */
  private holds = 0;

  constructor(private readonly opts: {
    client: AgentGatewayClient; pool: FilterPool; pgPath: string; stanza: string; agentId: string;
    walSegmentSize: number; pageSize: number; compressLevel: number; timeoutMs: number;
    /** Whether the repository takes WAL unencrypted (staged parts are not sealed). */
    plain: () => Promise<boolean>;
  }) {}

  start(): void {
    log.info(`WAL pre-streaming: finished pages of the segment PostgreSQL writes are sent ahead (archive-push-stream)`);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Ticks every TICK_MS, and at once again while a tick found a full part (the stream is behind). */
  private schedule(ms = TICK_MS): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      let more = false;
      this.ticking = this.tick().then((m) => { more = m; }, (err: unknown) => this.pause(err))
        .finally(() => { this.ticking = undefined; this.schedule(more ? 0 : undefined); });
    }, ms);
    this.timer.unref();
  }

  private pause(err: unknown): void {
    this.cur = undefined;
    const e = errorFromGrpc(err);
    // The repo-server restarted or dropped the stage: the segment starts over at the next tick.
    if (e instanceof ArchiveStageMissingError) return;
    log.info(`WAL pre-streaming paused for ${PAUSE_MS / 1000} s (segments are pushed whole meanwhile): ${e.message}`);
    this.pausedUntil = Date.now() + PAUSE_MS;
  }

  /** Runs a push; no part is started meanwhile (parts in flight finish). */
  async hold<T>(push: () => Promise<T>): Promise<T> {
    this.holds++;
    try {
      return await push();
    } finally {
      this.holds--;
    }
  }

  /**
   * The staged start of `name` for its push, or undefined. The segment is not streamed further:
   * it is finished. A part in flight is not waited for (the push cuts the stage back to what it
   * names), except the first, so that no stage the push does not know of is left behind.
   */
  async take(name: string): Promise<StagedPrefix | undefined> {
    if (this.cur?.name === name && this.cur.staged === 0) await this.ticking;
    const cur = this.cur;
    if (!cur || cur.name !== name) return undefined;
    this.cur = undefined;
    if (cur.staged === 0) return undefined;
    return { size: cur.staged, bytes: cur.buf.subarray(0, cur.staged), hash: cur.hash.copy() };
  }

  /** The segment after the newest one PostgreSQL has finished (.ready or .done): the one it writes. */
  private async target(): Promise<string | undefined> {
    let names: string[];
    try { names = await fs.promises.readdir(path.join(this.opts.pgPath, 'pg_wal', 'archive_status')); } catch { return undefined; }
    let newest: string | undefined;
    for (const n of names) {
      const seg = STATUS_RE.exec(n)?.[1];
      if (seg && (!newest || seg > newest)) newest = seg;
    }
    return newest ? walSegmentNext(newest, this.opts.walSegmentSize) : undefined;
  }

  /** Stages the next finished part of the segment PostgreSQL writes, if there is one; true when it was a full part (more may wait). */
  private async tick(): Promise<boolean> {
    if (Date.now() < this.pausedUntil || this.holds > 0) return false;
    const name = await this.target();
    if (!name) return false;
    if (this.cur?.name !== name) {
      if (!(await this.opts.plain())) { this.pausedUntil = Date.now() + PAUSE_MS; return false; }
      this.cur = {
        name, start: walSegmentStartLsn(name, this.opts.walSegmentSize), buf: this.cur?.buf ?? Buffer.allocUnsafe(this.opts.walSegmentSize),
        staged: 0, hash: crypto.createHash('sha256'), magic: -1,
      };
    }
    const cur = this.cur;
    let fh: fs.promises.FileHandle;
    try { fh = await fs.promises.open(path.join(this.opts.pgPath, 'pg_wal', name), 'r'); } catch { return false; }
    let part: Buffer;
    try {
      const page = this.opts.pageSize;
      const want = Math.min(READ_MAX + page, this.opts.walSegmentSize - cur.staged);
      const probe = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(probe, 0, want, cur.staged);
      // Finished pages: every valid page but the last valid one (PostgreSQL may still add to it).
      let valid = 0;
      while ((valid + 1) * page <= bytesRead && this.pageValid(cur, probe, valid, cur.staged + valid * page)) valid++;
      const finished = (valid - 1) * page;
      const left = this.opts.walSegmentSize - cur.staged;
      if (finished <= 0 || (finished < PART_MIN && left - finished > PART_MIN)) return false;
      // Read again: these pages were all written before the later page was seen.
      part = cur.buf.subarray(cur.staged, cur.staged + finished);
      const { bytesRead: again } = await fh.read(part, 0, finished, cur.staged);
      if (again !== finished) return false;
    } finally {
      await fh.close();
    }
    const t1 = Date.now();
    // Parts of up to PART bytes, compressed side by side on the pool, staged in order as each is ready.
    const slices: Buffer[] = [];
    for (let o = 0; o < part.length; o += PART) slices.push(part.subarray(o, o + PART));
    const packed = slices.map((sl) => this.opts.pool.compressWhole(sl, this.opts.compressLevel));
    for (const p of packed) p.catch(() => undefined);
    for (let i = 0; i < slices.length; i++) {
      const slice = slices[i]!;
      const { out } = await packed[i]!;
      const t2 = Date.now();
      const reply = await new Promise<ArchiveStageResult__Output>((resolve, reject) => {
        this.opts.client.archiveStage({
          stanza: this.opts.stanza, walName: name, agentId: this.opts.agentId, offset: cur.staged, size: slice.length, data: out,
        }, { deadline: grpcDeadline(this.opts.timeoutMs) }, (err, r) => (err || !r ? reject(err ?? new Error('no reply')) : resolve(r)));
      });
      // Taken by its push meanwhile: the push named only what was staged before this part.
      if (this.cur !== cur) return false;
      cur.hash.update(slice);
      cur.staged += slice.length;
      if (reply.staged !== cur.staged) {
        throw new ArchiveStageMissingError(`the repo-server holds ${reply.staged} staged bytes of '${name}', this agent sent ${cur.staged}`);
      }
      log.debug(`staged ${slice.length} bytes of '${name}' at ${cur.staged - slice.length} (${out.length} compressed): ${t2 - t1} ms to read and compress, stage ${Date.now() - t2} ms`);
    }
    return part.length >= READ_MAX;
  }

  /** Whether page `i` of `buf` has the header of the page at `offset` of the current segment. */
  private pageValid(cur: Current, buf: Buffer, i: number, offset: number): boolean {
    const at = i * this.opts.pageSize;
    const magic = buf.readUInt16LE(at);
    if (offset === 0) {
      // The first page: a long header whose magic the later pages must repeat.
      if ((buf.readUInt16LE(at + 2) & 0x0002) === 0 || buf.readBigUInt64LE(at + 8) !== cur.start) return false;
      cur.magic = magic;
      return true;
    }
    return cur.magic >= 0 && magic === cur.magic && buf.readBigUInt64LE(at + 8) === cur.start + BigInt(offset);
  }
}
