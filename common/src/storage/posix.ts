import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AssertError, ConfigError, FileMissingError, FileWriteError } from '../error';
import type { Storage, StorageInfo, StorageWriteOptions } from './storage';

/** fsync a directory so that the names in it are durable. */
async function syncPath(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/** mkdir -p that fsyncs each directory it creates and the parent it created it in. */
async function pathCreate(dir: string, mode: number): Promise<void> {
  const missing: string[] = [];
  let d = dir;
  while (!fs.existsSync(d)) {
    missing.push(d);
    d = path.dirname(d);
  }
  for (const m of missing.toReversed()) {
    try {
      await fs.promises.mkdir(m, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await syncPath(path.dirname(m));
  }
}

/** Writable to a temp file that is fsynced and renamed over the key when the stream finishes. */
class PosixWrite extends Writable {
  private fh: fs.promises.FileHandle | undefined;
  private readonly tmp: string;

  constructor(private readonly file: string, private readonly opts: StorageWriteOptions, private readonly modes: { file: number; path: number }) {
    super({ highWaterMark: 1024 * 1024 });
    this.tmp = opts.noAtomic ? file : `${file}.tmp.${randomBytes(4).toString('hex')}`;
  }

  override _construct(cb: (err?: Error | null) => void): void {
    pathCreate(path.dirname(this.file), this.modes.path)
      .then(() => fs.promises.open(this.tmp, 'w', this.opts.mode ?? this.modes.file))
      .then((fh) => { this.fh = fh; cb(); }, (err: Error) => cb(new FileWriteError(`unable to open '${this.tmp}' for write: ${err.message}`)));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.fh!.write(chunk).then(() => cb(), (err: Error) => cb(err));
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.fh!.writev(chunks.map((c) => c.chunk)).then(() => cb(), (err: Error) => cb(err));
  }

  override _final(cb: (err?: Error | null) => void): void {
    (async () => {
      if (!this.opts.noSyncFile) await this.fh!.sync();
      await this.fh!.close();
      this.fh = undefined;
      if (this.tmp !== this.file) await fs.promises.rename(this.tmp, this.file);
      if (!this.opts.noSyncPath) await syncPath(path.dirname(this.file));
    })().then(() => cb(), (err: Error) => cb(new FileWriteError(`unable to commit '${this.file}': ${err.message}`)));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    (async () => {
      await fh?.close().catch(() => undefined);
      // Destroyed before commit (an error upstream): nothing may stay visible.
      if (err && this.tmp !== this.file) await fs.promises.rm(this.tmp, { force: true });
      else if (err && this.opts.noAtomic) await fs.promises.rm(this.file, { force: true });
    })().then(() => cb(err), () => cb(err));
  }
}

/** The posix repository driver: files under a base path, written temp → fsync → rename → fsync dir. */
export class PosixStorage implements Storage {
  readonly type = 'posix';
  private readonly base: string;
  private readonly modes: { file: number; path: number };

  constructor(opts: { path: string; mode?: { file: number; path: number } }) {
    if (!path.isAbsolute(opts.path)) throw new ConfigError(`repo path '${opts.path}' must be absolute`);
    this.base = opts.path;
    this.modes = opts.mode ?? { file: 0o640, path: 0o750 };
  }

  /** Absolute path of a key; refuses keys that could leave the repository. */
  pathOf(key: string): string {
    if (path.isAbsolute(key) || key.split('/').some((s) => s === '..')) {
      throw new AssertError(`storage key '${key}' must be relative and must not contain '..'`);
    }
    return key === '' ? this.base : path.join(this.base, key);
  }

  newWrite(key: string, opts: StorageWriteOptions = {}): Writable {
    return new PosixWrite(this.pathOf(key), opts, this.modes);
  }

  async newRead(key: string, opts: { offset?: number; limit?: number } = {}): Promise<Readable> {
    const file = this.pathOf(key);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FileMissingError(`unable to open missing file '${key}' for read`);
      throw err;
    }
    const start = opts.offset ?? 0;
    if (opts.limit === 0) { await fh.close(); return Readable.from([]); }
    return fh.createReadStream({
      start, ...(opts.limit !== undefined ? { end: start + opts.limit - 1 } : {}), highWaterMark: 1024 * 1024, autoClose: true,
    });
  }

  async info(key: string): Promise<StorageInfo | undefined> {
    try {
      const st = await fs.promises.lstat(this.pathOf(key));
      return {
        name: path.basename(key), size: st.size, mtime: Math.floor(st.mtimeMs / 1000),
        type: st.isDirectory() ? 'path' : st.isSymbolicLink() ? 'link' : 'file',
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.info(key))?.type === 'file';
  }

  async list(dir: string, opts: { expression?: RegExp } = {}): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.pathOf(dir));
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return [];
      throw err;
    }
    // Temp files of writes in progress are not part of the repository.
    names = names.filter((n) => !/\.tmp\.[0-9a-f]{8}$/.test(n));
    if (opts.expression) names = names.filter((n) => opts.expression!.test(n));
    return names.sort();
  }

  async remove(key: string, opts: { errorOnMissing?: boolean } = {}): Promise<void> {
    try {
      await fs.promises.unlink(this.pathOf(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (opts.errorOnMissing) throw new FileMissingError(`unable to remove missing file '${key}'`);
        return;
      }
      throw err;
    }
    await syncPath(path.dirname(this.pathOf(key)));
  }

  async pathRemove(dir: string, opts: { recurse?: boolean } = {}): Promise<void> {
    const abs = this.pathOf(dir);
    if (opts.recurse) await fs.promises.rm(abs, { recursive: true, force: true });
    else await fs.promises.rmdir(abs).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
    if (fs.existsSync(path.dirname(abs))) await syncPath(path.dirname(abs));
  }

  async put(key: string, data: Buffer | string, opts: StorageWriteOptions = {}): Promise<void> {
    await pipeline(Readable.from([Buffer.from(data)]), this.newWrite(key, opts));
  }

  async get(key: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of await this.newRead(key)) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }
}

/** The storage driver of a repository by its type. */
export function storageRepoNew(config: { type: string; path: string }): Storage {
  if (config.type === 'posix') return new PosixStorage({ path: config.path });
  throw new ConfigError(`repo type '${config.type}' is not supported yet`, { hint: 'use repo1-type=posix (s3 and azure are coming)' });
}
