import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumFilter, SizeFilter, checksumOf, compressBuffer, compressOnPool, compressFilters, encryptBuffer, encryptFilters, pgControlReadBytes } from '@openrds/common';
import type { ChecksumType, CipherDataKey, CompressType, FilterPool } from '@openrds/common';

export interface BackupFileOptions {
  pgPath: string;
  name: string;                // relative to PGDATA
  size: number;                // listed size: bytes past it come from WAL replay
  compressType: CompressType;
  compressLevel: number;
  signal?: AbortSignal;
  /** Worker threads for zstd and the checksums (the main thread does them otherwise). */
  pool?: FilterPool;
  /** Encrypted repository: the backup's data key (the file is encrypted after compression). */
  cipher?: CipherDataKey;
  /** Checksums of the content and of the repo bytes (sha256 when not said). */
  checksumType?: ChecksumType;
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
  // zstd (and plain hashing) on a worker that reads the file itself: only the repo bytes cross
  // to this thread. gz runs in zlib (libuv's threads), lz4 here; pg_control needs its torn-read retry.
  const type = opts.checksumType ?? 'sha256';
  if (opts.pool && compressOnPool(opts.compressType) && opts.name !== 'global/pg_control') {
    const reader = await opts.pool.readFile(path.join(opts.pgPath, opts.name), opts.size, opts.compressType === 'zst' ? 'compress' : 'hash', opts.compressLevel, type);
    if (!reader) return { missing: true, size: 0, sha256: '', repoSize: 0, repoSha256: '' };
    if (!opts.cipher) {
      await pipeline([reader, sink()], opts.signal ? { signal: opts.signal } : {});
      const r = reader.result();
      return { missing: false, size: r.inSize, sha256: r.inSha256, repoSize: r.outSize, repoSha256: r.outSha256 };
    }
    // Encrypted: AES-GCM (fast, native) here after the worker's zstd, then the repo hash.
    const repoSha = new ChecksumFilter(type), repoSize = new SizeFilter();
    await pipeline([reader, ...encryptFilters(opts.cipher).map((f) => f.stream), repoSha.stream, repoSize.stream, sink()],
      opts.signal ? { signal: opts.signal } : {});
    const r = reader.result();
    return { missing: false, size: r.inSize, sha256: r.inSha256, repoSize: repoSize.result(), repoSha256: repoSha.result() };
  }
  const source = await backupFileOpen(opts);
  if (!source) return { missing: true, size: 0, sha256: '', repoSize: 0, repoSha256: '' };
  const sha = new ChecksumFilter(type), size = new SizeFilter(), repoSha = new ChecksumFilter(type), repoSize = new SizeFilter();
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
 * backupFileSmall for a run of small files: read, hashed and compressed on one worker in one
 * message (encrypted here after). The same results as backupFileSmall file by file; gz and
 * pg_control take that path.
 */
export async function backupFilesSmall(files: { name: string; size: number }[], opts: Omit<BackupFileOptions, 'name' | 'size'>): Promise<(BackupFileResult & { repoData?: Buffer })[]> {
  const pool = opts.pool;
  if (!pool || !compressOnPool(opts.compressType) || files.some((f) => f.name === 'global/pg_control')) {
    return Promise.all(files.map((f) => backupFileSmall({ ...opts, name: f.name, size: f.size })));
  }
  const got = await pool.readSmall(files.map((f) => ({ path: path.join(opts.pgPath, f.name), size: f.size })),
    opts.compressType === 'zst' ? 'compress' : 'hash', opts.compressLevel, opts.checksumType);
  return got.map((r) => {
    if (r.missing) return { missing: true, size: 0, sha256: '', repoSize: 0, repoSha256: '' };
    if (!opts.cipher) return { missing: false, size: r.size, sha256: r.sha256, repoSize: r.repoSize, repoSha256: r.repoSha256, repoData: r.repoData };
    const repoData = encryptBuffer(opts.cipher, r.repoData);
    return { missing: false, size: r.size, sha256: r.sha256, repoSize: repoData.length, repoSha256: checksumOf(opts.checksumType ?? 'sha256', repoData), repoData };
  });
}

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
  const type = opts.checksumType ?? 'sha256';
  const sha256 = checksumOf(type, data);
  const repoSha256 = repoData === data ? sha256 : checksumOf(type, repoData);
  return { missing: false, size: data.length, sha256, repoSize: repoData.length, repoSha256, repoData };
}
