import type { Readable, Writable } from 'node:stream';
import type { FilterPool } from '../io/filter-pool';

export interface StorageInfo {
  /** Base name for info(); the name relative to the listed path for listRecursive(). */
  name: string;
  type: 'file' | 'path' | 'link';
  size: number;
  /** Unix seconds. */
  mtime: number;
}

export interface StorageWriteOptions {
  /** Write in place instead of temp + rename: say why at the call site. */
  noAtomic?: boolean;
  /** Skip the fsync of the file before it becomes visible: say why at the call site. */
  noSyncFile?: boolean;
  /** Skip the fsync of the directory after the rename: say why at the call site. */
  noSyncPath?: boolean;
  /** File mode; the driver's default otherwise. */
  mode?: number;
}

export interface StorageReadOptions {
  /** First byte to read. */
  offset?: number;
  /** Read at most this many bytes. */
  limit?: number;
}

export interface StorageListOptions {
  /** Keep only the names that match. */
  expression?: RegExp;
}

/**
 * The face every repository driver shows (posix now; s3 and azure later). Keys are relative
 * posix paths ('backup/main/20261124-153148F/backup.manifest'); a driver refuses absolute keys
 * and '..' segments.
 *
 * A write is complete or missing: the bytes become visible at their key only when the stream
 * returned by newWrite() finishes (posix: fsync, rename, fsync the directory; object stores: one
 * PUT or a completed multipart upload), and a write destroyed or failed before that leaves
 * nothing behind. Callers never rename, which object stores cannot do cheaply; `move` is an
 * optional feature for the drivers that have it.
 */
export interface Storage {
  /** 'posix', later 's3', 'azure'. */
  readonly type: string;
  /**
   * A write that commits when the stream finishes (overwriting the key) and leaves nothing when it
   * fails. pipeline() may reject before a failed write has cleaned up: its 'close' event marks the end.
   */
  newWrite(key: string, opts?: StorageWriteOptions): Writable;
  /** A read of the key's bytes; throws FileMissingError (naming the key) when it does not exist. */
  newRead(key: string, opts?: StorageReadOptions): Promise<Readable>;
  /** What is at the key, without following a link; undefined when nothing is. */
  info(key: string): Promise<StorageInfo | undefined>;
  /** True when a file is at the key. */
  exists(key: string): Promise<boolean>;
  /** Names in one path (files and paths), sorted; [] when the path does not exist. */
  list(path: string, opts?: StorageListOptions): Promise<string[]>;
  /**
   * list() with one synchronous call, where the driver has one (posix): for a small directory on
   * a path a caller waits on, where a trip through libuv's threads waits for a busy host's cores.
   */
  listSync?(path: string, opts?: StorageListOptions): string[];
  /** Everything under a path, depth first in name order, names relative to it; nothing when it does not exist. */
  listRecursive?(path: string): AsyncIterable<StorageInfo>;
  /** Removes a file; a missing file is fine unless errorOnMissing. */
  remove(key: string, opts?: { errorOnMissing?: boolean }): Promise<void>;
  /** Removes a path (with its contents when recurse); a missing path is fine. */
  pathRemove(path: string, opts?: { recurse?: boolean }): Promise<void>;
  /** Writes a small file whole, with the same guarantees as newWrite. */
  put(key: string, data: Buffer | string, opts?: StorageWriteOptions): Promise<void>;
  /**
   * put() of several small files, each with the same guarantees, in one go where the driver can
   * do better than one put after the other (posix: on a worker of `pool`).
   */
  putMany?(items: { key: string; data: Buffer }[], opts: StorageWriteOptions & { pool: FilterPool }): Promise<void>;
  /**
   * put() in two steps (optional: posix has it): the data is written and fsynced under a temp
   * name, and becomes the key only on commit() (abort() removes it). A caller can check the data
   * while it is being written, and decide after.
   */
  putStaged?(key: string, data: Buffer): Promise<{ commit(): Promise<void>; abort(): Promise<void> }>;
  /**
   * A file built up in parts before it has a key (optional: posix has it), under a temp name in
   * the directory of `near`: parts are appended and made durable as they come, the file can be
   * cut back to an earlier length, and commit() gives it its key durably (abort() removes it).
   */
  appendable?(near: string): Promise<StorageAppendable>;
  /**
   * get() of several small files at once where the driver can do better (posix: on a worker of
   * `pool`): each file's bytes, or undefined when it is over `maxSize` (to be read with newRead).
   * FileMissingError names the first that does not exist.
   */
  getMany?(keys: string[], opts: { pool: FilterPool; maxSize: number }): Promise<(Buffer | undefined)[]>;
  /** Reads a small file whole; FileMissingError when it does not exist. */
  get(key: string): Promise<Buffer>;
  /** Renames a file or path durably, replacing a file at `to` (optional: posix has it). */
  move?(from: string, to: string): Promise<void>;
  /**
   * Makes the names of everything written under a path durable (posix: fsync of each directory),
   * for writers that skipped the per-file directory sync (`noSyncPath`). Drivers whose writes are
   * durable when they complete (object stores) do not have it.
   */
  pathSync?(path: string): Promise<void>;
}

/** See Storage.appendable. */
export interface StorageAppendable {
  /** Bytes in the file now. */
  readonly size: number;
  /** Appends; `sync` starts an fdatasync in the background (commit waits for it), so that little is left to flush at commit. */
  append(data: Buffer, sync: boolean): Promise<void>;
  /** Cuts the file back to `size` bytes. */
  truncate(size: number): Promise<void>;
  /**
   * `last` appended (when given), fdatasync (data and size durable), then the file takes the name
   * `key` (in the temp file's directory, replacing nothing: callers pick unused keys) and its
   * directory is fsynced, in one message to a worker of `pool`.
   */
  commit(key: string, pool: FilterPool, last?: Buffer): Promise<void>;
  abort(): Promise<void>;
  /**
   * zstd bytes appended by a worker of `pool`, which checks them while their fdatasync runs (see
   * FilterPool.zstdWriteDigest): the content's sha256 and size, and its first `head` bytes.
   * `parts` are moved to the worker where they own their memory: not to be used afterwards.
   */
  appendZstdChecked(parts: Buffer[], pool: FilterPool, head: number): Promise<{ sha256: string; size: number; head: Buffer }>;
}
