import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { Sha256Filter, SizeFilter, compressBuffer, compressFilters, encryptBuffer, encryptFilters, pgControlReadBytes } from '@openrds/common';
import type { CipherDataKey, CompressType, FilterPool } from '@openrds/common';

export interface BackupFileOptions {
  pgPath: string;
  name: string;                // relative to PGDATA
  size: number;                // listed size: bytes past it come from WAL replay
  compressType: CompressType;
  compressLevel: number;
  signal?: AbortSignal;
  /** Worker threads for zstd and sha256 (the main thread does them otherwise). */
  pool?: FilterPool;
  /** Encrypted repository: the backup's data key (the file is encrypted after compression). */
  cipher?: CipherDataKey;
}

export interface BackupFileResult {
  missing: boolean;
  size: number; sha256: string;
  repoSize: number; repoSha256: string;
}

/**
 * Copies one PGDATA file into `sink` (compressed), reading at most its listed size, and reports
 * the checksums of the original and of the repo bytes. A file removed since the listing is
 * reported as missing, which is normal (a table dropped during the backup). pg_control is read
 * with the torn-read retry so that the copy is always a consistent one.
 */
export async function backupFile(sink: () => Writable, opts: BackupFileOptions): Promise<BackupFileResult> {
  const source = await backupFileOpen(opts);
  if (!source) return { missing: true, size: 0, sha256: '', repoSize: 0, repoSha256: '' };
  // zstd (and plain hashing) go to the worker pool; gz runs in zlib, which uses libuv's threads.
  if (opts.pool && opts.compressType !== 'gz' && !opts.cipher) {
    const t = opts.pool.transform(opts.compressType === 'zst' ? 'compress' : 'hash', opts.compressLevel);
    await pipeline([source, t, sink()], opts.signal ? { signal: opts.signal } : {});
    const r = t.result();
    return { missing: false, size: r.inSize, sha256: r.inSha256, repoSize: r.outSize, repoSha256: r.outSha256 };
  }
  const sha = new Sha256Filter(), size = new SizeFilter(), repoSha = new Sha256Filter(), repoSize = new SizeFilter();
  if (opts.pool && opts.compressType !== 'gz') {
    // Encrypted: zstd and the content hash on a worker, AES-GCM (fast, native) here, then the repo hash.
    const t = opts.pool.transform(opts.compressType === 'zst' ? 'compress' : 'hash', opts.compressLevel);
    await pipeline([source, t, ...encryptFilters(opts.cipher).map((f) => f.stream), repoSha.stream, repoSize.stream, sink()],
      opts.signal ? { signal: opts.signal } : {});
    const r = t.result();
    return { missing: false, size: r.inSize, sha256: r.inSha256, repoSize: repoSize.result(), repoSha256: repoSha.result() };
  }
  await pipeline([source, sha.stream, size.stream,
    ...[...compressFilters(opts.compressType, opts.compressLevel), ...encryptFilters(opts.cipher)].map((f) => f.stream),
    repoSha.stream, repoSize.stream, sink()], opts.signal ? { signal: opts.signal } : {});
  return { missing: false, size: size.result(), sha256: sha.result(), repoSize: repoSize.result(), repoSha256: repoSha.result() };
}

async function backupFileOpen(opts: BackupFileOptions): Promise<Readable | undefined> {
  if (opts.name === 'global/pg_control') {
    return Readable.from([await pgControlReadBytes(opts.pgPath)]);
  }
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(path.join(opts.pgPath, opts.name), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (opts.size === 0) {
    await fh.close();
    return Readable.from([]);
  }
  // A small file gets a small read buffer: a 1 MiB buffer per 8 KiB file is mostly garbage.
  return fh.createReadStream({ start: 0, end: opts.size - 1, highWaterMark: Math.min(1024 * 1024, Math.max(16 * 1024, opts.size)), autoClose: true });
}

/** Files up to this size are read, hashed and compressed whole, without streams. */
export const SMALL_FILE_MAX = 256 * 1024;

/**
 * backupFile for a small file: one read (at most the listed size), sha256 and zstd on the whole
 * buffer. Returns the repo bytes with the result; undefined bytes when the file is gone.
 */
export async function backupFileSmall(opts: BackupFileOptions): Promise<BackupFileResult & { repoData?: Buffer }> {
  let data: Buffer;
  if (opts.name === 'global/pg_control') {
    data = await pgControlReadBytes(opts.pgPath);
  } else {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(path.join(opts.pgPath, opts.name), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true, size: 0, sha256: '', repoSize: 0, repoSha256: '' };
      throw err;
    }
    try {
      const buf = Buffer.allocUnsafe(opts.size);
      let got = 0;
      while (got < opts.size) {
        const { bytesRead } = await fh.read(buf, got, opts.size - got, got);
        if (bytesRead === 0) break;      // truncated since the listing: WAL replay restores it
        got += bytesRead;
      }
      data = buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }
  const compressed = compressBuffer(opts.compressType, data, opts.compressLevel);
  const repoData = opts.cipher ? encryptBuffer(opts.cipher, compressed) : compressed;
  const sha256 = createHash('sha256').update(data).digest('hex');
  const repoSha256 = repoData === data ? sha256 : createHash('sha256').update(repoData).digest('hex');
  return { missing: false, size: data.length, sha256, repoSize: repoData.length, repoSha256, repoData };
}
