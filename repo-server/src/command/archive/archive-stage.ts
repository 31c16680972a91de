import * as crypto from 'node:crypto';
import { ArchiveStageMissingError, AssertError, ChecksumError, FormatError, ZstdDataError, zstdDecompressBuffer } from '@openrds/common';
import type { StorageAppendable } from '@openrds/common';

/**
 * The staged parts of WAL segments that PostgreSQL is still writing (archive-push-stream): an
 * agent sends each finished part of the segment ahead, as one zstd frame; the repo-server checks
 * it (it must decompress to the size the agent said), hashes it into the segment's running
 * sha256 and appends it to a temp file (fdatasynced in the background every SYNC_EVERY bytes), so that the ArchivePush of the segment
 * carries only the part after the staged bytes and costs a small write and fsync. Nothing staged
 * is visible in the archive: the push checks the whole segment's size and sha256 (the staged
 * hash state continued over the rest) before the file takes its name.
 */

/** Uncompressed bytes of one staged part at most. */
export const STAGE_PART_MAX = 4 * 1024 * 1024;
/** Segments staged at once (one per agent and stanza normally); the least recently used goes first. */
const STAGES_MAX = 32;
/** A stage not added to for this long is dropped (its agent went away). */
const STAGE_IDLE_MS = 10 * 60_000;
/**
 * Compressed bytes appended since the last background fdatasync that start the next one. A sync
 * per part (every 20-100 ms under load) made each a journal commit beside PostgreSQL's own WAL
 * flushes on a shared filesystem, and left one under way when the push came, which its commit
 * waited for before its own. The commit's fdatasync writes what is left: this much at most.
 */
const SYNC_EVERY = 256 * 1024;

/**
 * Where staged parts (and a staged push's rest) are decompressed to be checked and hashed: their
 * content is not kept, and a fresh buffer per part was garbage that made V8 collect every few
 * parts. Used synchronously only (no await between the decompression and the last look).
 */
let scratch: Buffer | undefined;
export function stageScratch(): Buffer {
  return (scratch ??= Buffer.allocUnsafeSlow(STAGE_PART_MAX + 1));
}

/** The state after the first `raw` uncompressed bytes: where they end in the file and their running sha256. */
interface Mark { raw: number; packed: number; hash: crypto.Hash }

export class Stage {
  /** marks[0] is the empty start; the last is the end of what is staged. */
  private readonly marks: Mark[] = [{ raw: 0, packed: 0, hash: crypto.createHash('sha256') }];
  /** The first uncompressed bytes (the WAL long page header), for the push's header check. */
  head = Buffer.alloc(0);
  /** Drivers without appendable files (object stores): the parts in memory, stored with one put. */
  readonly parts: Buffer[] = [];
  usedAt = Date.now();
  /** Compressed bytes appended since the last background sync was started. */
  private unsynced = 0;

  constructor(readonly id: string, readonly archiveId: string, readonly file: StorageAppendable | undefined) {}

  get raw(): number { return this.marks[this.marks.length - 1]!.raw; }
  get packed(): number { return this.marks[this.marks.length - 1]!.packed; }

  /** The running hash after `raw` bytes (a copy: the stage keeps its own), or undefined when no part ends there. */
  hashAt(raw: number): crypto.Hash | undefined {
    return this.marks.find((m) => m.raw === raw)?.hash.copy();
  }

  /** Appends one part (its zstd frame `packed` holding `size` bytes) at the staged end; `head` holds the stage's first `headSize` bytes after it. */
  async add(packed: Buffer, size: number, headSize: number): Promise<void> {
    let raw: Buffer;
    try {
      raw = zstdDecompressBuffer(packed, size, stageScratch());
    } catch (err) {
      if (err instanceof ZstdDataError) throw new ChecksumError(`staged part of WAL file arrived damaged: ${err.message}`, { hint: 'the agent sends it again' });
      throw err;
    }
    if (raw.length !== size) throw new ChecksumError(`staged part holds ${raw.length} bytes, the agent said ${size}`);
    const last = this.marks[this.marks.length - 1]!;
    const hash = last.hash.copy().update(raw);
    // Copied before the write: the scratch is another part's once this awaits.
    const head = this.head.length < headSize ? Buffer.concat([this.head, raw.subarray(0, headSize - this.head.length)]) : this.head;
    this.unsynced += packed.length;
    const sync = this.unsynced >= SYNC_EVERY;
    if (sync) this.unsynced = 0;
    if (this.file) await this.file.append(packed, sync);
    else this.parts.push(packed);
    this.head = head;
    this.marks.push({ raw: last.raw + size, packed: last.packed + packed.length, hash });
    this.usedAt = Date.now();
  }

  /** Cuts the stage back to its first `raw` bytes (a part the agent sends again, or the staged prefix a push uses). */
  async cut(raw: number): Promise<void> {
    const at = this.marks.findIndex((m) => m.raw === raw);
    if (at < 0) throw new AssertError(`no staged part ends at ${raw}`);
    if (at === this.marks.length - 1) return;
    this.marks.length = at + 1;
    const packed = this.packed;
    if (this.file) await this.file.truncate(packed);
    else {
      let keep = 0, total = 0;
      while (keep < this.parts.length && total + this.parts[keep]!.length <= packed) total += this.parts[keep++]!.length;
      this.parts.length = keep;
    }
    if (this.head.length > raw) this.head = this.head.subarray(0, raw);
  }

  async abort(): Promise<void> {
    this.parts.length = 0;
    await this.file?.abort().catch(() => undefined);
  }
}

/** The stages of one repository, by agent, stanza and segment. */
export class StageTable {
  private readonly stages = new Map<string, Stage>();
  /** Pushes waiting for parts of their stage still on their way (see reached), by stage id. */
  private readonly waiters = new Map<string, Set<() => void>>();

  static idOf(stanza: string, walName: string, agentId: string): string {
    return `${stanza}\u0000${walName}\u0000${agentId}`;
  }

  get(id: string): Stage | undefined { return this.stages.get(id); }

  ids(): string[] { return [...this.stages.keys()]; }

  /** A new stage for `id` (an older one of the same id is dropped), making room within STAGES_MAX. */
  async create(id: string, archiveId: string, open: () => Promise<StorageAppendable | undefined>): Promise<Stage> {
    await this.drop(id);
    const now = Date.now();
    for (const [other, st] of this.stages) {
      if (now - st.usedAt > STAGE_IDLE_MS) await this.drop(other);
    }
    while (this.stages.size >= STAGES_MAX) {
      const oldest = [...this.stages.values()].sort((a, b) => a.usedAt - b.usedAt)[0]!;
      await this.drop(oldest.id);
    }
    const st = new Stage(id, archiveId, await open());
    this.stages.set(id, st);
    return st;
  }

  /** Removes the stage from the table (the caller now owns it). */
  take(id: string): Stage | undefined {
    const st = this.stages.get(id);
    this.stages.delete(id);
    if (st) this.changed(id);
    return st;
  }

  /**
   * Resolves once stage `id` holds at least `raw` bytes; at once when there is no such stage, and
   * as soon as it is dropped or after `ms`. A push names the bytes its agent has handed to stage
   * calls, and the last of them may still be on their way here: the push waits for them rather
   * than the agent waiting for their answer (a round trip on the path PostgreSQL waits on).
   */
  reached(id: string, raw: number, ms: number): Promise<void> {
    const st = this.stages.get(id);
    if (!st || st.raw >= raw) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(on);
        if (waiters.size === 0 && this.waiters.get(id) === waiters) this.waiters.delete(id);
        resolve();
      };
      const on = (): void => {
        const now = this.stages.get(id);
        if (now !== st || now.raw >= raw) done();
      };
      const timer = setTimeout(done, ms);
      waiters.add(on);
    });
  }

  /** Stage `id` grew, or left the table: its waiters look again. */
  changed(id: string): void {
    // A waiter that is done leaves the set as it is iterated (a Set allows that).
    for (const on of this.waiters.get(id) ?? []) on();
  }

  async drop(id: string): Promise<void> {
    await this.take(id)?.abort();
  }

  get size(): number { return this.stages.size; }

  /** Compressed bytes the stages without a temp file (object stores) hold in memory. */
  memoryBytes(): number {
    let total = 0;
    for (const st of this.stages.values()) if (!st.file) total += st.packed;
    return total;
  }
}

export function stageMissing(walName: string, why: string): ArchiveStageMissingError {
  return new ArchiveStageMissingError(`no staged part of WAL file '${walName}' to continue: ${why}`,
    { hint: 'the agent pushes the whole file (a restarted repo-server holds no staged parts)' });
}

export function stageRefused(why: string): FormatError {
  return new FormatError(`WAL staging (archive-push-stream) is not available: ${why}`, { hint: 'WAL files are pushed whole' });
}
