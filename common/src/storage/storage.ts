import type { Readable, Writable } from 'node:stream';

export interface StorageInfo {
  name: string;
  type: 'file' | 'path' | 'link';
  size: number;
  mtime: number;               // unix seconds
}

export interface StorageWriteOptions {
  /** Write in place instead of temp + rename: say why at the call site. */
  noAtomic?: boolean;
  noSyncFile?: boolean;
  noSyncPath?: boolean;
  mode?: number;
}

/**
 * The face every repository driver (posix now; s3 and azure later) shows. Keys are relative
 * posix paths. A write is complete or missing: the bytes become visible at their key only when
 * the stream finishes, and a write destroyed before that leaves nothing behind.
 */
export interface Storage {
  readonly type: string;
  newWrite(key: string, opts?: StorageWriteOptions): Writable;
  /** Throws FileMissingError when the key does not exist. */
  newRead(key: string, opts?: { offset?: number; limit?: number }): Promise<Readable>;
  info(key: string): Promise<StorageInfo | undefined>;
  exists(key: string): Promise<boolean>;
  /** Names in one path, sorted; [] when the path does not exist. */
  list(path: string, opts?: { expression?: RegExp }): Promise<string[]>;
  remove(key: string, opts?: { errorOnMissing?: boolean }): Promise<void>;
  pathRemove(path: string, opts?: { recurse?: boolean }): Promise<void>;
  put(key: string, data: Buffer | string, opts?: StorageWriteOptions): Promise<void>;
  get(key: string): Promise<Buffer>;
}
