import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { AssertError, ConfigError, FileMissingError, FileReadError, FileWriteError } from '../error';
import type { FilterPool, PoolPutFile } from '../io/filter-pool';
import { WRITE_MAX } from '../io/write-max';
import type { Storage, StorageAppendable, StorageInfo, StorageListOptions, StorageReadOptions, StorageWriteOptions } from './storage';

/** Name suffix of a write in progress: `<key>.tmp.<8 hex>`. Such files are not part of the repository. */
export const STORAGE_TEMP_RE = /\.tmp\.[0-9a-f]{8}$/;

const IO_BUFFER_SIZE = 1024 * 1024;

/**
 * The temp name of a write: unique enough that two writers of one key do not meet ('wx' refuses
 * to share one if they do), and cheap (no system random source per file: many small files).
 */
function tempName(file: string): string {
  return `${file}.tmp.${Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0')}`;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** fsync a directory, so that the names created or renamed in it survive a crash. */
async function pathSync(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/**
 * mkdir -p that fsyncs the parent of every directory it creates: a file committed in a new
 * directory is durable only if the directory's own name is. A directory made by a concurrent
 * writer (EEXIST) has its parent fsynced too, since that writer may not have done it yet.
 */
async function pathCreate(dir: string, mode: number): Promise<void> {
  try {
    await fs.promises.mkdir(dir, { mode });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') {
      await pathCreate(path.dirname(dir), mode);
      await fs.promises.mkdir(dir, { mode }).catch((e: unknown) => { if (errnoOf(e) !== 'EEXIST') throw e; });
    } else if (errnoOf(err) !== 'EEXIST') {
      throw err;
    }
  }
  await pathSync(path.dirname(dir));
}

/** The first `max` bytes of `buffers` (the buffers themselves, the last one cut). */
function buffersUpTo(buffers: Buffer[], max: number): Buffer[] {
  const out: Buffer[] = [];
  let left = max;
  for (const b of buffers) {
    if (left <= 0) break;
    out.push(b.length > left ? b.subarray(0, left) : b);
    left -= b.length;
  }
  return out;
}

/** The buffers left after the first `written` bytes of `buffers` went out. */
function buffersAfter(buffers: Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = written;
  for (const b of buffers) {
    if (skip >= b.length) { skip -= b.length; continue; }
    rest.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return rest;
}

/**
 * A write to a temp file in the key's directory that becomes the key on finish: fsync the file,
 * close, rename over the key, fsync the directory. Destroyed or failed before the rename, it
 * removes the temp file, so nothing of it is ever visible at the key.
 */
class PosixWrite extends Writable {
  private readonly tmp: string;
  private fh: fs.promises.FileHandle | undefined;
  private commit: Promise<void> | undefined;
  private isCommitted = false;

  constructor(private readonly key: string, private readonly file: string, private readonly opts: StorageWriteOptions,
    private readonly modes: { file: number; path: number }) {
    super({ highWaterMark: IO_BUFFER_SIZE });
    this.tmp = opts.noAtomic ? file : tempName(file);
  }

  override _construct(cb: (err?: Error | null) => void): void {
    this.open().then(() => cb(), (err: unknown) => cb(new FileWriteError(`unable to open '${this.key}' for write: ${messageOf(err)}`, { cause: err })));
  }

  private async open(): Promise<void> {
    const mode = this.opts.mode ?? this.modes.file;
    // 'wx': a temp name is never shared, so finding one means something is wrong.
    const flags = this.opts.noAtomic ? 'w' : 'wx';
    try {
      this.fh = await fs.promises.open(this.tmp, flags, mode);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
      // Create parents only when needed: most writes go to a directory that exists.
      await pathCreate(path.dirname(this.file), this.modes.path);
      this.fh = await fs.promises.open(this.tmp, flags, mode);
    }
    // The umask may have narrowed the mode given at create.
    await this.fh.chmod(mode);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => cb(), (err: unknown) => cb(this.writeError(err)));
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => cb(), (err: unknown) => cb(this.writeError(err)));
  }

  /** writev may write less than asked (IOV_MAX, a signal): go on from where it stopped. WRITE_MAX bytes a call at most. */
  private async writeAll(buffers: Buffer[]): Promise<void> {
    let rest = buffers.filter((b) => b.length > 0);
    while (rest.length > 0) {
      const { bytesWritten } = await this.fh!.writev(buffersUpTo(rest, WRITE_MAX));
      rest = buffersAfter(rest, bytesWritten);
    }
  }

  private writeError(err: unknown): Error {
    return new FileWriteError(`unable to write '${this.key}': ${messageOf(err)}`, { cause: err });
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.commit = (async () => {
      const fh = this.fh!;
      if (!this.opts.noSyncFile) await fh.sync();
      this.fh = undefined;
      await fh.close();
      if (this.tmp !== this.file) await fs.promises.rename(this.tmp, this.file);
      // Visible from here on: a failing directory fsync is reported, but the complete file stays.
      this.isCommitted = true;
      if (!this.opts.noSyncPath) await pathSync(path.dirname(this.file));
    })();
    this.commit.then(() => cb(), (err: unknown) => cb(new FileWriteError(`unable to commit '${this.key}': ${messageOf(err)}`, { cause: err })));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    (async () => {
      // A commit under way decides the outcome: wait for it before cleaning up.
      await this.commit?.catch(() => undefined);
      const fh = this.fh;
      this.fh = undefined;
      await fh?.close().catch(() => undefined);
      // Not committed: nothing may stay behind (with noAtomic, the partial file in place).
      if (!this.isCommitted) await fs.promises.rm(this.tmp, { force: true }).catch(() => undefined);
    })().then(() => cb(err), () => cb(err));
  }
}

/** The posix repository driver: files under a base path, written temp → fsync → rename → fsync dir. */
export class PosixStorage implements Storage {
  readonly type = 'posix';
  readonly base: string;
  private readonly modes: { file: number; path: number };

  constructor(opts: { path: string; mode?: { file: number; path: number } }) {
    if (!path.isAbsolute(opts.path)) throw new ConfigError(`repo path '${opts.path}' must be absolute`);
    this.base = path.resolve(opts.path);
    this.modes = opts.mode ?? { file: 0o640, path: 0o750 };
  }

  /** Absolute path of a key; refuses keys that could leave the repository. */
  pathOf(key: string): string {
    if (typeof key !== 'string' || path.posix.isAbsolute(key) || key.split('/').includes('..') || key.includes('\0')) {
      throw new AssertError(`storage key '${key}' must be a relative path without '..'`);
    }
    return key === '' ? this.base : path.join(this.base, key);
  }

  newWrite(key: string, opts: StorageWriteOptions = {}): Writable {
    const file = this.pathOf(key);
    if (file === this.base) throw new AssertError('storage key for a write must not be empty');
    return new PosixWrite(key, file, opts, this.modes);
  }

  async newRead(key: string, opts: StorageReadOptions = {}): Promise<Readable> {
    const file = this.pathOf(key);
    const start = opts.offset ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) throw new AssertError(`invalid read offset '${opts.offset}' for '${key}'`);
    if (opts.limit !== undefined && (!Number.isSafeInteger(opts.limit) || opts.limit < 0)) {
      throw new AssertError(`invalid read limit '${opts.limit}' for '${key}'`);
    }
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new FileMissingError(`unable to open missing file '${key}' for read`);
      throw new FileReadError(`unable to open '${key}' for read: ${messageOf(err)}`, { cause: err });
    }
    if (opts.limit === 0) {
      await fh.close();
      return Readable.from([]);
    }
    return fh.createReadStream({
      start, ...(opts.limit !== undefined ? { end: start + opts.limit - 1 } : {}), highWaterMark: IO_BUFFER_SIZE, autoClose: true,
    });
  }

  async info(key: string): Promise<StorageInfo | undefined> {
    const file = this.pathOf(key);
    let st: fs.Stats;
    try {
      st = await fs.promises.lstat(file);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
      throw new FileReadError(`unable to get info for '${key}': ${messageOf(err)}`, { cause: err });
    }
    return { name: path.posix.basename(key), ...infoOf(st) };
  }

  async exists(key: string): Promise<boolean> {
    return (await this.info(key))?.type === 'file';
  }

  async list(dir: string, opts: StorageListOptions = {}): Promise<string[]> {
    const abs = this.pathOf(dir);
    let names: string[];
    try {
      names = await fs.promises.readdir(abs);
    } catch (err) {
      return listFailed(dir, err);
    }
    return listFilter(names, opts);
  }

  listSync(dir: string, opts: StorageListOptions = {}): string[] {
    const abs = this.pathOf(dir);
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch (err) {
      return listFailed(dir, err);
    }
    return listFilter(names, opts);
  }

  async *listRecursive(dir: string): AsyncIterable<StorageInfo> {
    const root = this.pathOf(dir);
    // Depth first, one directory listing in memory per level: flat however large the tree.
    async function* walk(rel: string): AsyncGenerator<StorageInfo> {
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(rel === '' ? root : path.join(root, rel), { withFileTypes: true });
      } catch (err) {
        if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return;
        throw new FileReadError(`unable to list '${path.posix.join(dir, rel)}': ${messageOf(err)}`, { cause: err });
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const entry of entries) {
        if (STORAGE_TEMP_RE.test(entry.name)) continue;
        const name = rel === '' ? entry.name : `${rel}/${entry.name}`;
        let st: fs.Stats;
        try {
          st = await fs.promises.lstat(path.join(root, name));
        } catch (err) {
          if (errnoOf(err) === 'ENOENT') continue;      // removed while listing
          throw new FileReadError(`unable to get info for '${path.posix.join(dir, name)}': ${messageOf(err)}`, { cause: err });
        }
        const info = { name, ...infoOf(st) };
        yield info;
        if (info.type === 'path') yield* walk(name);
      }
    }
    yield* walk('');
  }

  async remove(key: string, opts: { errorOnMissing?: boolean } = {}): Promise<void> {
    const file = this.pathOf(key);
    // No fsync of the directory: a removed file that comes back after a crash is only clutter.
    try {
      await fs.promises.unlink(file);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') {
        if (opts.errorOnMissing) throw new FileMissingError(`unable to remove missing file '${key}'`);
        return;
      }
      throw new FileWriteError(`unable to remove '${key}': ${messageOf(err)}`, { cause: err });
    }
  }

  async pathRemove(dir: string, opts: { recurse?: boolean } = {}): Promise<void> {
    const abs = this.pathOf(dir);
    if (abs === this.base) throw new AssertError('refusing to remove the repository base path');
    try {
      if (opts.recurse) await fs.promises.rm(abs, { recursive: true, force: true });
      else await fs.promises.rmdir(abs);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      const why = errnoOf(err) === 'ENOTEMPTY' ? 'it is not empty' : messageOf(err);
      throw new FileWriteError(`unable to remove path '${dir}': ${why}`, { cause: err });
    }
    await pathSync(path.dirname(abs)).catch((err: unknown) => { if (errnoOf(err) !== 'ENOENT') throw err; });
  }

  /**
   * The same commit as newWrite (temp file, fsync, rename, fsync of the directory) without a
   * stream: for the many small files of a cluster, the stream's machinery costs more than the I/O.
   */
  async put(key: string, data: Buffer | string, opts: StorageWriteOptions = {}): Promise<void> {
    const file = this.pathOf(key);
    if (file === this.base) throw new AssertError('storage key for a write must not be empty');
    const mode = opts.mode ?? this.modes.file;
    const tmp = opts.noAtomic ? file : tempName(file);
    const flags = opts.noAtomic ? 'w' : 'wx';
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(tmp, flags, mode);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw new FileWriteError(`unable to open '${key}' for write: ${messageOf(err)}`, { cause: err });
      try {
        await pathCreate(path.dirname(file), this.modes.path);
        fh = await fs.promises.open(tmp, flags, mode);
      } catch (e) {
        throw new FileWriteError(`unable to open '${key}' for write: ${messageOf(e)}`, { cause: e });
      }
    }
    let committed = false;
    try {
      // The umask may have narrowed the mode given at create.
      await fh.chmod(mode);
      await fh.writeFile(data);
      if (!opts.noSyncFile) await fh.sync();
      const open = fh;
      fh = undefined;
      await open.close();
      if (tmp !== file) await fs.promises.rename(tmp, file);
      committed = true;
      if (!opts.noSyncPath) await pathSync(path.dirname(file));
    } catch (err) {
      await fh?.close().catch(() => undefined);
      if (!committed) await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw new FileWriteError(`unable to ${committed ? 'commit' : 'write'} '${key}': ${messageOf(err)}`, { cause: err });
    }
  }

  /**
   * put() of several small files, each with the same guarantees, written by a worker of `pool` in
   * one message (the fsyncs run there many at once): the main thread stays free for the stream
   * that brings them. A missing directory is created (as put does) and the rest goes on.
   */
  async putMany(items: { key: string; data: Buffer }[], opts: StorageWriteOptions & { pool: FilterPool }): Promise<void> {
    const mode = opts.mode ?? this.modes.file;
    const files: PoolPutFile[] = items.map(({ key, data }) => {
      const file = this.pathOf(key);
      if (file === this.base) throw new AssertError('storage key for a write must not be empty');
      return { tmp: opts.noAtomic ? file : tempName(file), path: file, flags: opts.noAtomic ? 'w' : 'wx', mode, sync: !opts.noSyncFile, data };
    });
    const created = new Set<string>();
    for (let from = 0; from < files.length;) {
      const { failure } = await opts.pool.putFiles(from === 0 ? files : files.slice(from));
      if (!failure) break;
      const at = from + failure.index;
      const dir = path.dirname(files[at]!.path);
      if (failure.errno !== 'ENOENT' || created.has(dir)) {
        throw new FileWriteError(`unable to write '${items[at]!.key}': ${failure.error}`, { hint: 'check free space and permissions of the repository' });
      }
      // Parents are created only when needed: most writes go to a directory that exists.
      await pathCreate(dir, this.modes.path).catch((err: unknown) => {
        throw new FileWriteError(`unable to open '${items[at]!.key}' for write: ${messageOf(err)}`, { cause: err });
      });
      created.add(dir);
      from = at;
    }
    if (!opts.noSyncPath) for (const dir of new Set(files.map((f) => path.dirname(f.path)))) await pathSync(dir);
  }

  /** put() in two steps: written and fsynced under a temp name now, renamed to the key (and its directory fsynced) on commit. */
  async putStaged(key: string, data: Buffer): Promise<{ commit(): Promise<void>; abort(): Promise<void> }> {
    const file = this.pathOf(key);
    if (file === this.base) throw new AssertError('storage key for a write must not be empty');
    const tmpKey = path.posix.join(path.posix.dirname(key), path.basename(tempName(file)));
    await this.put(tmpKey, data, { noAtomic: true, noSyncPath: true });
    return { commit: () => this.move(tmpKey, key), abort: () => this.remove(tmpKey) };
  }

  async appendable(near: string): Promise<StorageAppendable> {
    const file = this.pathOf(near);
    if (file === this.base) throw new AssertError('storage key for a write must not be empty');
    const tmp = tempName(file);
    let fh: fs.promises.FileHandle;
    try {
      try {
        fh = await fs.promises.open(tmp, 'wx', this.modes.file);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
        await pathCreate(path.dirname(tmp), this.modes.path);
        fh = await fs.promises.open(tmp, 'wx', this.modes.file);
      }
    } catch (err) {
      throw new FileWriteError(`unable to open '${near}' for write: ${messageOf(err)}`, { cause: err });
    }
    return new PosixAppendable(this, fh, path.posix.join(path.posix.dirname(near), path.basename(tmp)), tmp);
  }

  async getMany(keys: string[], opts: { pool: FilterPool; maxSize: number }): Promise<(Buffer | undefined)[]> {
    let got: (Buffer | 'large' | 'missing')[];
    try {
      got = await opts.pool.readFiles(keys.map((key) => ({ path: this.pathOf(key), max: opts.maxSize })));
    } catch (err) {
      if (err instanceof FileReadError) throw err;
      throw new FileReadError(`unable to read ${keys.length} file(s) from '${keys[0] ?? ''}': ${messageOf(err)}`, { cause: err });
    }
    return got.map((g, i) => {
      if (g === 'missing') throw new FileMissingError(`unable to open missing file '${keys[i]!}' for read`);
      return g === 'large' ? undefined : g;
    });
  }

  async get(key: string): Promise<Buffer> {
    const file = this.pathOf(key);
    try {
      return await fs.promises.readFile(file);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new FileMissingError(`unable to open missing file '${key}' for read`);
      throw new FileReadError(`unable to read '${key}': ${messageOf(err)}`, { cause: err });
    }
  }

  async move(from: string, to: string): Promise<void> {
    const src = this.pathOf(from), dst = this.pathOf(to);
    if (src === this.base || dst === this.base) throw new AssertError('refusing to move the repository base path');
    try {
      await fs.promises.rename(src, dst);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw new FileWriteError(`unable to move '${from}' to '${to}': ${messageOf(err)}`, { cause: err });
      if (!(await fs.promises.lstat(src).then(() => true, () => false))) {
        throw new FileMissingError(`unable to move missing '${from}' to '${to}'`);
      }
      await pathCreate(path.dirname(dst), this.modes.path);
      await fs.promises.rename(src, dst);
    }
    await pathSync(path.dirname(dst));
    if (path.dirname(src) !== path.dirname(dst)) await pathSync(path.dirname(src));
  }
  async pathSync(key: string): Promise<void> {
    const dirs = [this.pathOf(key)];
    while (dirs.length > 0) {
      const dir = dirs.pop()!;
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') continue;
        throw new FileWriteError(`unable to sync path '${key}': ${messageOf(err)}`, { cause: err });
      }
      for (const e of entries) if (e.isDirectory()) dirs.push(path.join(dir, e.name));
      await pathSync(dir).catch((err: unknown) => { throw new FileWriteError(`unable to sync path '${key}': ${messageOf(err)}`, { cause: err }); });
    }
  }

}

function infoOf(st: fs.Stats): Omit<StorageInfo, 'name'> {
  return {
    type: st.isDirectory() ? 'path' : st.isSymbolicLink() ? 'link' : 'file',
    size: st.isFile() ? st.size : 0,
    mtime: Math.floor(st.mtimeMs / 1000),
  };
}

/** A listing's names as list() returns them: writes in progress are not part of the repository. */
function listFilter(names: string[], opts: StorageListOptions): string[] {
  names = names.filter((n) => !STORAGE_TEMP_RE.test(n));
  if (opts.expression) names = names.filter((n) => opts.expression!.test(n));
  return names.sort();
}

/** A missing path lists as empty; other errors are read errors. */
function listFailed(dir: string, err: unknown): string[] {
  if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return [];
  throw new FileReadError(`unable to list '${dir}': ${messageOf(err)}`, { cause: err });
}

/** Storage.appendable of the posix driver: a temp file written at explicit offsets. */
class PosixAppendable implements StorageAppendable {
  size = 0;
  private closed = false;
  /** The background fdatasync under way (appends do not wait for it; commit does), and whether another is due after it. */
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private syncError: unknown;

  constructor(private readonly storage: PosixStorage, private readonly fh: fs.promises.FileHandle, private readonly tmpKey: string, private readonly tmp: string) {}

  async append(data: Buffer, sync: boolean): Promise<void> {
    try {
      for (let done = 0; done < data.length;) {
        const { bytesWritten } = await this.fh.write(data, done, Math.min(WRITE_MAX, data.length - done), this.size + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw new FileWriteError(`unable to write '${this.tmpKey}': ${messageOf(err)}`, { hint: 'check free space and permissions of the repository', cause: err });
    }
    this.size += data.length;
    if (sync) this.syncStart();
  }

  /** Starts an fdatasync in the background (one at a time: a request while one runs makes one more after it). */
  private syncStart(): void {
    if (this.syncing) { this.syncAgain = true; return; }
    this.syncing = (async () => {
      do {
        this.syncAgain = false;
        try { await this.fh.datasync(); } catch (err) { this.syncError ??= err; }
      } while (this.syncAgain && !this.closed);
      this.syncing = undefined;
    })();
  }

  async truncate(size: number): Promise<void> {
    await this.syncing;
    if (size > this.size) throw new AssertError(`cannot extend '${this.tmpKey}' from ${this.size} to ${size} bytes by truncating`);
    await this.fh.truncate(size);
    this.size = size;
  }

  async appendZstdChecked(parts: Buffer[], pool: FilterPool, head: number): Promise<{ sha256: string; size: number; head: Buffer }> {
    const length = parts.reduce((n, p) => n + p.length, 0);
    await this.syncing;
    try {
      return await pool.zstdWriteDigest(parts, head, this.fh.fd, this.size, `'${this.tmpKey}'`);
    } finally {
      // Written or not, the bytes are past the old end (a truncate or an abort follows a failure).
      this.size += length;
    }
  }

  async commit(key: string, pool: FilterPool, last?: Buffer): Promise<void> {
    try {
      await this.syncing;
      if (this.syncError !== undefined) throw this.syncError;
    } catch (err) {
      throw new FileWriteError(`unable to sync '${this.tmpKey}': ${messageOf(err)}`, { cause: err });
    }
    const file = this.storage.pathOf(key);
    if (path.dirname(file) !== path.dirname(this.tmp)) throw new AssertError(`'${key}' is not in the directory of '${this.tmpKey}'`);
    // One worker message (the last bytes' write, fdatasync, rename, directory fsync) instead of a
    // trip through libuv per step: on a busy host each trip waits for the main thread (a WAL push
    // waits on this). The data and the size are all a reader needs (fsync would also commit the
    // times: a journal commit even when the background syncs have left nothing else to write).
    try {
      await pool.commitFile(this.fh.fd, this.tmp, file, last ? { data: last, at: this.size } : undefined);
      if (last) this.size += last.length;
    } catch (err) {
      throw new FileWriteError(`unable to commit '${this.tmpKey}' as '${key}': ${messageOf(err)}`, { cause: err });
    }
    this.closed = true;
    // The file is in place and durable: its close is not waited for.
    this.fh.close().catch(() => undefined);
  }

  async abort(): Promise<void> {
    if (!this.closed) { this.closed = true; await this.syncing; await this.fh.close().catch(() => undefined); }
    await fs.promises.rm(this.tmp, { force: true });
  }
}
