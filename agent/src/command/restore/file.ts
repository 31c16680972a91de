import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CipherKeyLookup, CompressType, FilterPool } from '@openrds/common';
import {
  ChecksumError, ChecksumFilter, FileWriteError, OpenrdsError, SizeFilter, checksumIsEmpty, checksumOf, checksumTypeOf, ZstdDataError, compressOnPool, decompressBuffer, decompressFilters, decryptBuffer, decryptFilters, isDecodeError,
} from '@openrds/common';

export interface RestoreFileOptions {
  destination: string;         // absolute path
  size: number;
  /** The manifest's checksum of the content (its type says how to hash: see ChecksumType). */
  sha256: string;
  mtime: number;               // unix seconds
  mode: number;
  compressType: CompressType;
  signal?: AbortSignal;
  /** Worker threads for zstd and the checksums (the main thread does them otherwise). */
  pool?: FilterPool;
  /** Encrypted repository: the keys of the job (the repo bytes are decrypted before decompression). */
  keys?: CipherKeyLookup;
}


/**
 * Writes one file of a backup from its repo bytes: decompresses, checks size and checksum against
 * the manifest, fsyncs (a pooled write: in the background, see FilterPool.syncAll), and sets mode
 * and mtime. A mismatch fails the restore naming the file,
 * since a corrupt repo file must never become a silently corrupt cluster.
 */
export async function restoreFile(source: (() => Readable) | undefined, opts: RestoreFileOptions): Promise<void> {
  let pooled = false;
  if (opts.size > 0) {
    if (!source) throw new ChecksumError(`no repo data for '${opts.destination}'`);
    let got: { size: number; sha256: string };
    try {
      if (opts.pool && compressOnPool(opts.compressType)) {
        // A worker decompresses, hashes and writes the file (O_DIRECT where the file system takes
        // it: see FilterPool), sets its mode and times, and fsyncs it in the background (the caller
        // waits with pool.syncAll()): only repo bytes cross to it.
        pooled = true;
        const writer = await opts.pool.writeFile(opts.destination, opts.mode, opts.compressType === 'zst' ? 'decompress' : 'hash', opts.mtime,
          checksumTypeOf(opts.sha256), true);
        await pipeline([source(), ...decryptFilters(opts.keys, `repo data of '${opts.destination}'`).map((f) => f.stream), writer],
          opts.signal ? { signal: opts.signal } : {});
        got = { size: writer.result().outSize, sha256: writer.result().outSha256 };
      } else {
        const sha = new ChecksumFilter(checksumTypeOf(opts.sha256)), size = new SizeFilter();
        // The write stream owns the descriptor and fsyncs it before closing (flush).
        await pipeline([source(),
          ...[...decryptFilters(opts.keys, `repo data of '${opts.destination}'`), ...decompressFilters(opts.compressType)].map((f) => f.stream), sha.stream, size.stream,
          fs.createWriteStream(opts.destination, { mode: opts.mode, flush: true, highWaterMark: 1024 * 1024 })],
        opts.signal ? { signal: opts.signal } : {});
        got = { size: size.result(), sha256: sha.result() };
      }
    } catch (err) {
      // A decompression failure means the repo bytes are damaged: say so, naming the file.
      if (err instanceof OpenrdsError || opts.signal?.aborted || !isDecodeError(err)) throw err;
      throw new ChecksumError(`repo data of '${opts.destination}' is corrupt: ${(err as Error).message}`,
        { hint: 'the repo copy of this file is damaged: restore from another backup set (--set) and run verify' });
    }
    if (got.size !== opts.size || got.sha256 !== opts.sha256) {
      throw new ChecksumError(
        `restored file '${opts.destination}' has size ${got.size} checksum ${got.sha256}, but the backup manifest says size ${opts.size} checksum ${opts.sha256}`,
        { hint: 'the repo copy of this file is corrupt: restore from another backup set (--set) and run verify' });
    }
  } else {
    if (!checksumIsEmpty(opts.sha256)) {
      throw new ChecksumError(`manifest lists '${opts.destination}' with size 0 but a non-empty checksum`);
    }
    const fh = await fs.promises.open(opts.destination, 'w', opts.mode);
    try { await fh.sync(); } finally { await fh.close(); }
  }
  if (pooled) return;
  // The umask may have narrowed the mode at create.
  await fs.promises.chmod(opts.destination, opts.mode);
  await fs.promises.utimes(opts.destination, opts.mtime, opts.mtime);
}

/**
 * restoreFile for a small file whose repo bytes are in memory: decompressed and checked whole,
 * written with one write and an fsync, no streams.
 */
export async function restoreFileSmall(repoData: Buffer, opts: RestoreFileOptions): Promise<void> {
  let data: Buffer;
  try {
    const compressed = opts.keys ? decryptBuffer(opts.keys, repoData, `repo data of '${opts.destination}'`) : repoData;
    data = decompressBuffer(opts.compressType, compressed, opts.size);
  } catch (err) {
    if (!(err instanceof ZstdDataError)) throw err;
    throw corrupt(opts, err.message);
  }
  await restoreSmallWrite(data, checksumOf(checksumTypeOf(opts.sha256), data), opts);
}

/**
 * restoreFileSmall for a run of small files: decrypted here, then decompressed, checked and
 * written on one worker in one message (fsyncs in the background: the caller waits with
 * pool.syncAll()). A failure names the file, as restoreFileSmall does.
 */
export async function restoreFilesSmall(files: { repoData: Buffer; opts: RestoreFileOptions }[], pool: FilterPool): Promise<void> {
  if (files.length === 0) return;
  if (files.some((f) => !compressOnPool(f.opts.compressType))) {
    await Promise.all(files.map((f) => restoreFileSmall(f.repoData, f.opts)));
    return;
  }
  const results = await pool.writeSmall(files.map((f) => ({
    path: f.opts.destination, size: f.opts.size, sha256: f.opts.sha256, mode: f.opts.mode, mtime: f.opts.mtime, compressed: f.opts.compressType === 'zst',
    data: f.opts.keys ? decryptBuffer(f.opts.keys, f.repoData, `repo data of '${f.opts.destination}'`) : f.repoData,
  })));
  for (const [i, r] of results.entries()) {
    const opts = files[i]!.opts;
    if ('corrupt' in r) throw corrupt(opts, `zstd data is damaged: ${r.corrupt}`);
    if ('sha256' in r) throw checksumMismatch(opts, r.size, r.sha256);
    if ('error' in r) throw new FileWriteError(`unable to write ${r.error}`, { hint: 'check free space and permissions of the destination' });
  }
  if (results.length < files.length) throw new ChecksumError(`the restore of '${files[results.length]!.opts.destination}' was not attempted`);
}

function checksumMismatch(opts: RestoreFileOptions, size: number, sha256: string): ChecksumError {
  return new ChecksumError(
    `restored file '${opts.destination}' has size ${size} checksum ${sha256}, but the backup manifest says size ${opts.size} checksum ${opts.sha256}`,
    { hint: 'the repo copy of this file is corrupt: restore from another backup set (--set) and run verify' });
}

function corrupt(opts: RestoreFileOptions, why: string): ChecksumError {
  return new ChecksumError(`repo data of '${opts.destination}' is corrupt: ${why}`,
    { hint: 'the repo copy of this file is damaged: restore from another backup set (--set) and run verify' });
}

/** Checks a small file's content against the manifest and writes it durably. */
async function restoreSmallWrite(data: Buffer, sha256: string, opts: RestoreFileOptions): Promise<void> {
  if (data.length !== opts.size || sha256 !== opts.sha256) throw checksumMismatch(opts, data.length, sha256);
  const fh = await fs.promises.open(opts.destination, 'w', opts.mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
    // The umask may have narrowed the mode at create.
    await fh.chmod(opts.mode);
    await fh.utimes(opts.mtime, opts.mtime);
  } finally {
    await fh.close();
  }
}
