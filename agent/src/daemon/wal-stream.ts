import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArchiveStageMissingError, RepoUnavailableError, StanzaMissingError, errorFromGrpc, grpcDeadline, log, walSegmentNext, walSegmentStartLsn } from '@openrds/common';
import type { AgentGatewayClient, ArchiveStageResult__Output, FilterPool } from '@openrds/common';
import type { WalFlushed } from './pg-connect';

/**
 * WAL pre-streaming (`archive-push-stream`): while PostgreSQL writes a segment, the daemon sends
 * its finished bytes to the repo-server ahead (ArchiveStage), so that when the segment is ready
 * its push carries only the last bytes, if any, and archive_command returns in milliseconds
 * instead of the time it takes to compress and store 16 MiB.
 *
 * Which bytes are finished, two ways:
 * - Flush mode (a primary the daemon can query): the bytes before PostgreSQL's WAL flush position
 *   (pg_current_wal_flush_lsn), rounded down to a page. PostgreSQL never writes flushed WAL again,
 *   so they are what the segment will hold, and the push reads only the rest. A segment the flush
 *   position has left is staged to its end before the next begins: its push has only to commit.
 * - Header mode (a standby, no connection): a page is finished when the page after it has been
 *   written: its header is valid (xlp_magic of the segment's first page, xlp_pageaddr the page's
 *   own LSN; a recycled segment still holds an older address, a preallocated one zeros). The
 *   pages are read again after that check, so what is staged is what PostgreSQL wrote before the
 *   later page. Stale pages of the same address can survive a crash past the end of recovery, so
 *   the push reads the finished segment and compares its start with the staged bytes.
 * Either way a push sends the whole file when the staged start differs, when the repo-server lost
 * the stage, or when streaming is off.
 */

/** Uncompressed bytes sent in one part at most (the repo-server takes up to 4 MiB). */
const PART = 2 * 1024 * 1024;
/** Finished bytes taken in one step at most, as parts compressed side by side (a part must not span all of it: see readBuf). */
const READ_MAX = 2 * PART;
/** Fewer finished bytes than this wait for the next tick (unless the segment is nearly done). */
const PART_MIN = 64 * 1024;
/** After a refusal other than a lost stage (an encrypted or multi-repo server, an older server): this long without streaming. */
const PAUSE_MS = 60_000;
/** After a failure that passes (the repo-server unreachable, the stanza not created yet): this long. */
const RETRY_MS = 1_000;
/** Header mode: how often the segment PostgreSQL writes is looked at (at once again after a full read: the stream is behind); flush mode: its shortest step. */
const TICK_MS = 20;
/**
 * Flush mode looks at the flush position when about half of what the segment has left, and
 * FAR_STEP at most, should be flushed at the rate WAL is written (the higher of the last
 * interval's and a smoothed one: see tickFlushed): a segment written at an even rate of ~6 MB/s
 * is looked at ~13 times, in steps of 2 MiB, then halving as its end comes near, so that its
 * push finds little left to send (~150 KiB at the median under the OLTP bench). Each look is a query, and each
 * part a read, a compression and a call here, a decompression, a hash and a write at the
 * repo-server: looks every 100 ms while the end was far and every 20 ms within 2 MiB of it were
 * ~38 queries and ~30 calls per segment under an OLTP load, and cost the database host as much
 * CPU again as pushing the segment itself. Looks come TICK_MS apart at least, NEAR_MAX_MS at most
 * within NEAR_END of the end (the rate may rise), FAR_MAX_MS before; FAR_TICK_MS until a rate is
 * known. While the end is further than NEAR_END, fewer than PART_FAR bytes wait for a later look.
 */
const FAR_STEP = 2 * 1024 * 1024;
const NEAR_END = 2 * 1024 * 1024;
const PART_FAR = 1024 * 1024;
const FAR_TICK_MS = 100;
const NEAR_MAX_MS = 50;
const FAR_MAX_MS = 300;
/** Flush mode, while the flush position stands still (an idle cluster): a look this often, not 50 queries a second. */
const IDLE_TICK_MS = 250;
/** A finished segment's status file: the segment PostgreSQL writes is the one after the newest. */
const STATUS_RE = /^([0-9A-F]{24})\.(?:ready|done)$/;

/** The staged start of a segment, as the push needs it. */
export interface StagedPrefix {
  /** Uncompressed bytes the repo-server holds. */
  size: number;
  /**
   * Those bytes, to compare with the finished file; undefined when every one of them was below
   * PostgreSQL's flush position when it was read (final: nothing to compare, only the rest is read).
   */
  bytes: Buffer | undefined;
  /** sha256 over them, to continue over the rest (a copy: update it freely). */
  hash: crypto.Hash;
}

interface Current {
  name: string;
  start: bigint;
  /** Header mode: the segment's bytes as read so far (bytes [0, sent)), for the push's compare. */
  buf: Buffer | undefined;
  /** Bytes the repo-server has acknowledged. */
  staged: number;
  /** Bytes handed to the stage calls (staged, and the parts still on their way), and the running sha256 over them. */
  sent: number;
  hashSent: crypto.Hash;
  /**
   * Bytes whose stage call has been made (staged, and the one part on its way to the repo-server),
   * and the sha256 over them (the push continues a copy): what a push names (the repo-server
   * waits for that part).
   */
  issued: number;
  hashIssued: crypto.Hash;
  /** The stage calls of its parts, one after the other, and how many have not settled. */
  chain: Promise<void>;
  queued: number;
  magic: number;
  /** Staged up to PostgreSQL's flush position only (no kept bytes, no compare at the push). */
  flushed: boolean;
  /** Its push has taken it, or PostgreSQL has finished it: no further part is sent (the push sends those bytes). */
  taking?: boolean;
  /** A stage call failed: the parts after it are not sent, and its push goes whole. */
  failed?: boolean;
}

/** A staged start with more than this left to send is not used: the segment is pushed whole. */
const BEHIND_MAX = 4 * 1024 * 1024;
/** Pushes in a row that find the stream that far behind make it rest this long. */
const BEHIND_RUN = 3;
const BEHIND_PAUSE_MS = 2_000;
/** Segments staged whole by the flush position and waiting for their push, at most (their pushes are late: older ones are pushed whole). */
const DONE_MAX = 4;
/**
 * Parts of a segment on their way at most: a tick reads and compresses the next bytes while the
 * parts before are staged (a step of the stream is a query, a read, a compression and a call,
 * each waiting for a core on a busy host), but starts none past this.
 */
const QUEUED_MAX = 4;
/** A staged push keeps the stream still this long at most (see take). */
const QUIET_MAX_MS = 200;

/** Flush mode: ms to the next look at the flush position, `unwritten` bytes before the segment's end, WAL written at `rate` bytes per ms. */
export function lookAfter(unwritten: number, rate: number): number {
  const near = unwritten <= NEAR_END;
  if (!(rate > 0)) return near ? TICK_MS : FAR_TICK_MS;
  const want = Math.max(Math.min(FAR_STEP, unwritten / 2), PART_MIN);
  return Math.round(Math.min(Math.max(want / rate, TICK_MS), near ? NEAR_MAX_MS : FAR_MAX_MS));
}

export class WalStreamer {
  private cur: Current | undefined;
  /** Segments staged to their end (by the flush position) whose push has not taken them yet. */
  private readonly done: Current[] = [];
  /**
   * Flush mode's read buffer (header mode reads into the segment's own buffer). A part must never
   * span all of it: the pool moves a buffer that is a whole ArrayBuffer to its worker (detaching
   * it here) instead of copying it; PART slices of READ_MAX bytes never do.
   */
  private readBuf: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private pausedUntil = 0;
  /** The last pause's message (a repeat of it is logged at DETAIL). */
  private pausedFor = '';
  /** Flush mode: the position the last tick saw, and whether it had not moved since the one before. */
  private lastLsn = -1n;
  private lastLsnStill = false;
  /** Flush mode: when the last position was read, the rate WAL is written at (bytes per ms, smoothed), and the next tick's delay. */
  private lastLsnAt = 0;
  private rate = 0;
  private nextTickMs = TICK_MS;
  /** Pushes in a row that found their segment far behind (see take). */
  private behind = 0;
  /** Pushes under way: the stream waits for them, so that their compression does not queue behind its parts on the pool. */
  private holds = 0;
  /** The stream starts nothing before this time: a staged push is under way (see take). */
  private quietUntil = 0;

  constructor(private readonly opts: {
    client: AgentGatewayClient; pool: FilterPool; pgPath: string; stanza: string; agentId: string;
    walSegmentSize: number; pageSize: number; compressLevel: number; timeoutMs: number;
    /** Whether the repository takes WAL unencrypted (staged parts are not sealed). */
    plain: () => Promise<boolean>;
    /** PostgreSQL's flush position (a primary's), when it can be had: the stream then stages only flushed WAL. */
    flushed?: () => Promise<WalFlushed | undefined>;
  }) {}

  start(): void {
    log.info(`WAL pre-streaming: finished pages of the segment PostgreSQL writes are sent ahead (archive-push-stream)`);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Ticks every TICK_MS (IDLE_TICK_MS while nothing is written), and at once again while a tick found a full part (the stream is behind). */
  private schedule(ms = this.lastLsnStill ? IDLE_TICK_MS : this.nextTickMs): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      let more = false;
      void this.tick().then((m) => { more = m; }, (err: unknown) => { this.cur = undefined; this.pause(err); })
        .finally(() => this.schedule(more ? 0 : undefined));
    }, ms);
    this.timer.unref();
  }

  private pause(err: unknown): void {
    const e = errorFromGrpc(err);
    // The repo-server restarted or dropped the stage: the segment starts over at the next tick.
    if (e instanceof ArchiveStageMissingError) return;
    const ms = e instanceof RepoUnavailableError || e instanceof StanzaMissingError ? RETRY_MS : PAUSE_MS;
    // Said once at INFO; the same reason again (a multi-repo server refuses every minute) at DETAIL.
    const text = `WAL pre-streaming paused for ${ms / 1000} s (segments are pushed whole meanwhile): ${e.message}`;
    if (text === this.pausedFor) log.detail(text);
    else log.info(text);
    this.pausedFor = text;
    this.pausedUntil = Date.now() + ms;
  }

  /** Resolves once every stage call under way has settled. */
  async settled(): Promise<void> {
    await Promise.all([...this.done, ...(this.cur ? [this.cur] : [])].map((c) => c.chain));
  }

  /** Runs a push; header mode starts no part meanwhile, flush mode none while a staged push runs (parts in flight finish). */
  async hold<T>(push: () => Promise<T>): Promise<T> {
    this.holds++;
    try {
      return await push();
    } finally {
      if (--this.holds === 0) this.quietUntil = 0;
    }
  }

  /**
   * The staged start of `name` for its push, or undefined. The segment is not streamed further:
   * it is finished. The start named includes the part whose stage call is on its way (one at
   * most: a segment's calls go one after the other): the repo-server's push waits for it
   * (ArchiveStore's STAGE_WAIT_MS), where the agent waiting for its answer cost a round trip on
   * the path PostgreSQL waits on, and sending its bytes again would read, compress and check them
   * once more. Should that call fail, the push is refused as not a staged start, and goes whole.
   * A part whose call is not made yet is not sent: the push sends those bytes.
   */
  async take(name: string): Promise<StagedPrefix | undefined> {
    const found = this.done.find((c) => c.name === name) ?? (this.cur?.name === name ? this.cur : undefined);
    if (found) {
      found.taking = true;
      const at = this.done.indexOf(found);
      if (at >= 0) this.done.splice(at, 1);
      if (this.cur === found) this.cur = undefined;
    }
    const cur = found?.failed ? undefined : found;
    log.debug(`WAL pre-streaming: the push of '${name}' takes ${cur ? `${cur.issued} staged bytes (${cur.issued - cur.staged} on their way; ${cur.sent === this.opts.walSegmentSize ? 'staged to its end' : 'being staged'})` : 'nothing staged'}`);
    if (!cur || cur.issued === 0) return undefined;
    if (this.opts.walSegmentSize - cur.issued > BEHIND_MAX) {
      // Far behind PostgreSQL (a bulk load): a whole push is cheaper than the rest of a staged one
      // (read, hashed and compressed on a worker, checked on a worker of the repo-server). After a
      // few in a row the stream rests, rather than take CPU from the load and the pushes.
      if (++this.behind >= BEHIND_RUN) {
        log.detail(`WAL pre-streaming is behind PostgreSQL's WAL rate (${BEHIND_RUN} segments in a row): paused for ${BEHIND_PAUSE_MS / 1000} s, segments are pushed whole`);
        this.pausedUntil = Date.now() + BEHIND_PAUSE_MS;
        this.behind = 0;
      }
      return undefined;
    }
    this.behind = 0;
    // The push is short (only the rest and the commit) and PostgreSQL waits on it: the stream
    // stays still until it is done, rather than begin the next segment beside it (its first part
    // is a listing, a new temp file, a decompression and a hash on the repo-server's main thread,
    // and a compression on the pool here, each in the push's way on a busy host).
    this.quietUntil = Date.now() + QUIET_MAX_MS;
    return { size: cur.issued, bytes: cur.flushed ? undefined : cur.buf!.subarray(0, cur.issued), hash: cur.hashIssued.copy() };
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

  private currentNew(name: string, flushed: boolean): Current {
    return {
      name, start: walSegmentStartLsn(name, this.opts.walSegmentSize), staged: 0,
      sent: 0, hashSent: crypto.createHash('sha256'), issued: 0, hashIssued: crypto.createHash('sha256'), chain: Promise.resolve(), queued: 0, magic: -1, flushed,
      // Header mode keeps the staged bytes for the push's compare (the last segment's buffer is reused).
      buf: flushed ? undefined : (this.cur?.buf ?? Buffer.allocUnsafe(this.opts.walSegmentSize)),
    };
  }

  /** Stages the next finished part of the segment PostgreSQL writes, if there is one; true when it was a full part (more may wait). */
  private async tick(): Promise<boolean> {
    const now = Date.now();
    if (now < this.pausedUntil || now < this.quietUntil) return false;
    // Flush mode goes on while whole pushes run: what it stages ahead is what keeps the next push
    // short (held back, each push would send most of its segment, and hold the stream back in
    // turn). A staged push is short: nothing starts beside it (quietUntil, see take).
    const at = this.opts.flushed ? await this.opts.flushed() : undefined;
    if (at) return this.tickFlushed(at);
    if (this.holds > 0) return false;
    if (this.cur?.flushed) this.cur = undefined;
    const name = await this.target();
    if (!name) return false;
    if (this.cur?.name !== name) {
      if (!(await this.opts.plain())) { this.pausedUntil = Date.now() + PAUSE_MS; return false; }
      this.cur = this.currentNew(name, false);
    }
    const cur = this.cur;
    if (cur.queued >= QUEUED_MAX) return false;
    let fh: fs.promises.FileHandle;
    try { fh = await fs.promises.open(path.join(this.opts.pgPath, 'pg_wal', name), 'r'); } catch { return false; }
    let part: Buffer;
    try {
      const page = this.opts.pageSize;
      const want = Math.min(READ_MAX + page, this.opts.walSegmentSize - cur.sent);
      const probe = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(probe, 0, want, cur.sent);
      // Finished pages: every valid page but the last valid one (PostgreSQL may still add to it).
      let valid = 0;
      while ((valid + 1) * page <= bytesRead && this.pageValid(cur, probe, valid, cur.sent + valid * page)) valid++;
      const finished = (valid - 1) * page;
      const left = this.opts.walSegmentSize - cur.sent;
      if (finished <= 0 || (finished < PART_MIN && left - finished > PART_MIN)) return false;
      // Read again: these pages were all written before the later page was seen.
      part = cur.buf!.subarray(cur.sent, cur.sent + finished);
      const { bytesRead: again } = await fh.read(part, 0, finished, cur.sent);
      if (again !== finished) return false;
    } finally {
      await fh.close();
    }
    if (this.cur !== cur || cur.taking) return false;
    this.send(cur, part);
    return part.length >= READ_MAX;
  }

  /**
   * Flush mode: stages what PostgreSQL has flushed of the segment it writes. A segment the flush
   * position has left is staged to its end first (all of it is flushed), then waits in `done` for
   * its push, so that the push has nothing to send but the commit.
   */
  private async tickFlushed(at: WalFlushed): Promise<boolean> {
    const segSize = this.opts.walSegmentSize;
    const now = Date.now();
    // Bytes per ms since the last look, smoothed (half of it the rate before), and the bytes
    // PostgreSQL has still to write in the segment it writes. The next look is timed by the
    // higher of the last rate and the smoothed one: a rising rate (the full-page images after a
    // checkpoint) would otherwise end the segment before the look, and leave its push a long rest.
    let rate = this.rate;
    if (this.lastLsn >= 0n && now > this.lastLsnAt && at.lsn >= this.lastLsn) {
      const last = Number(at.lsn - this.lastLsn) / (now - this.lastLsnAt);
      this.rate = this.rate > 0 ? (this.rate + last) / 2 : last;
      rate = Math.max(this.rate, last);
    }
    const unwritten = segSize - Number(at.lsn - walSegmentStartLsn(at.name, segSize));
    this.nextTickMs = lookAfter(unwritten, rate);
    this.lastLsnStill = at.lsn === this.lastLsn;
    this.lastLsn = at.lsn;
    this.lastLsnAt = now;
    let cur = this.cur;
    if (cur && (!cur.flushed || (cur.name !== at.name && walSegmentNext(cur.name, segSize) !== at.name))) {
      // Header mode's segment, or the flush position is elsewhere (a new timeline, the stream far behind): set aside.
      this.cur = undefined;
      if (cur.flushed && cur.sent > 0) this.doneAdd(cur);
      cur = undefined;
    }
    if (!cur) {
      // Only the segment PostgreSQL writes is begun. At a segment's very end (a switch, or the
      // moment between two segments) the position names one that is finished: its push comes (or
      // came, or it waits staged whole in `done`) whatever is staged now. A push is only ever of a
      // finished segment, so the position is never inside one a push took.
      if (at.lsn - walSegmentStartLsn(at.name, segSize) >= BigInt(segSize)) return false;
      if (!(await this.opts.plain())) { this.pausedUntil = Date.now() + PAUSE_MS; return false; }
      cur = this.cur = this.currentNew(at.name, true);
    }
    // The segment's bytes that are final: all of an earlier segment, else up to the flush position's page.
    const page = this.opts.pageSize;
    const limit = cur.name === at.name ? Math.min(segSize, Math.floor(Number(at.lsn - cur.start) / page) * page) : segSize;
    const finished = Math.min(limit - cur.sent, READ_MAX);
    const near = cur.name !== at.name || unwritten <= NEAR_END;
    if (finished <= 0 || (finished < (near ? PART_MIN : PART_FAR) && limit < segSize)) {
      if (cur.sent === segSize) this.curDone(cur);
      return false;
    }
    if (cur.queued >= QUEUED_MAX) return false;
    if (!this.readBuf) this.readBuf = Buffer.allocUnsafeSlow(READ_MAX);
    const part = this.readBuf.subarray(0, finished);
    let fh: fs.promises.FileHandle;
    try { fh = await fs.promises.open(path.join(this.opts.pgPath, 'pg_wal', cur.name), 'r'); } catch { return false; }
    try {
      const { bytesRead } = await fh.read(part, 0, finished, cur.sent);
      if (bytesRead !== finished) return false;
    } finally {
      await fh.close();
    }
    // Taken by its push while it was read: the push sends these bytes.
    if (this.cur !== cur || cur.taking) return false;
    // The buffer is free again once this returns (hashed, and copied to the pool's workers).
    this.send(cur, part);
    if (cur.sent === segSize) this.curDone(cur);
    return finished >= READ_MAX || this.cur !== cur;
  }

  /** The segment is staged to its end: it waits for its push (or was taken meanwhile). */
  private curDone(cur: Current): void {
    if (this.cur !== cur) return;
    this.cur = undefined;
    this.doneAdd(cur);
  }

  private doneAdd(cur: Current): void {
    this.done.push(cur);
    // A push that never came (a segment archived by someone else, a stage of a name past the end): the oldest goes.
    while (this.done.length > DONE_MAX) this.done.shift();
  }

  /**
   * Hands `part` (the bytes after what `cur` has sent) to the stage calls, in parts of up to PART
   * bytes: each is hashed now and compressed on the pool at once (side by side; the pool copies
   * the bytes, so `part` may be read over when this returns), and staged after the parts before.
   */
  private send(cur: Current, part: Buffer): void {
    const t1 = Date.now();
    for (let o = 0; o < part.length; o += PART) {
      const slice = part.subarray(o, o + PART);
      const offset = cur.sent, size = slice.length;
      const hash = cur.hashSent.update(slice).copy();
      const packed = this.opts.pool.compressBytes(slice, this.opts.compressLevel);
      packed.catch(() => undefined);
      cur.sent += size;
      cur.queued++;
      cur.chain = cur.chain.then(() => this.stageCall(cur, offset, size, packed, hash, t1)).finally(() => { cur.queued--; });
    }
  }

  /** Stages one part of `cur` (the bytes at `offset`, compressed by `packed`); `hash` is the sha256 up to its end. A failure stops the segment's stream. */
  private async stageCall(cur: Current, offset: number, size: number, packed: ReturnType<FilterPool['compressBytes']>, hash: crypto.Hash, t1: number): Promise<void> {
    const name = cur.name;
    // Not when its push took it, a part before failed, or the stream set it aside (a new segment
    // in header mode, the oldest of `done`): no push would take what follows.
    const live = (): boolean => !cur.taking && !cur.failed && (this.cur === cur || this.done.includes(cur));
    try {
      const out = await packed;
      if (!live()) return;
      // PostgreSQL has finished the segment meanwhile: its push (starting now) sends these bytes.
      // Staged now, they would reach the repo-server beside the push, which waits for them.
      if (this.finished(name)) {
        cur.taking = true;
        return;
      }
      const t2 = Date.now();
      // On its way from here: a push from now on names these bytes (see take).
      cur.issued = offset + size;
      cur.hashIssued = hash;
      const reply = await new Promise<ArchiveStageResult__Output>((resolve, reject) => {
        this.opts.client.archiveStage({ stanza: this.opts.stanza, walName: name, agentId: this.opts.agentId, offset, size, data: out },
          { deadline: grpcDeadline(this.opts.timeoutMs) }, (err, r) => (err || !r ? reject(err ?? new Error('no reply')) : resolve(r)));
      });
      // Streaming again: a later pause is news.
      this.pausedFor = '';
      if (reply.staged !== offset + size) {
        throw new ArchiveStageMissingError(`the repo-server holds ${reply.staged} staged bytes of '${name}', this agent sent ${offset + size}`);
      }
      cur.staged = offset + size;
      log.debug(`staged ${size} bytes of '${name}' at ${offset} (${out.length} compressed): ${t2 - t1} ms to read and compress, stage ${Date.now() - t2} ms`);
    } catch (err) {
      if (!live()) return;
      // Not staged as sent: the segment's push goes whole; the stream begins the next segment.
      cur.failed = true;
      if (this.cur === cur) this.cur = undefined;
      this.pause(err);
    }
  }

  /** Whether PostgreSQL has finished segment `name` (its status file is there). */
  private finished(name: string): boolean {
    const dir = path.join(this.opts.pgPath, 'pg_wal', 'archive_status');
    return fs.existsSync(path.join(dir, `${name}.ready`)) || fs.existsSync(path.join(dir, `${name}.done`));
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
