import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import type { CipherKeyLookup, CompressType, FilterPool } from '@openrds/common';
import {
  ChecksumError, OpenrdsError, Sha256Filter, SizeFilter, ZstdDataError, decompressBuffer, decompressFilters, decryptBuffer, decryptFilters, isDecodeError,
} from '@openrds/common';

export interface RestoreFileOptions {
  destination: string;         // absolute path
  size: number;
  sha256: string;
  mtime: number;               // unix seconds
  mode: number;
  compressType: CompressType;
  signal?: AbortSignal;
  /** Worker threads for zstd and sha256 (the main thread does them otherwise). */
  pool?: FilterPool;
  /** Encrypted repository: the keys of the job (the repo bytes are decrypted before decompression). */
  keys?: CipherKeyLookup;
}

export const SHA256_EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * Writes one file of a backup from its repo bytes: decompresses, checks size and sha256 against
 * the manifest, fsyncs, and sets mode and mtime. A mismatch fails the restore naming the file,
 * since a corrupt repo file must never become a silently corrupt cluster.
 */
export async function restoreFile(source: (() => Readable) | undefined, opts: RestoreFileOptions): Promise<void> {
  if (opts.size > 0) {
    if (!source) throw new ChecksumError(`no repo data for '${opts.destination}'`);
    const sha = new Sha256Filter(), size = new SizeFilter();
    // Decompression stays on the main thread (the sliced transform bounds its output); the
    // pool hashes uncompressed files.
    const pooled = opts.compressType === 'none' && !opts.keys ? opts.pool?.transform('hash') : undefined;
    try {
      // The write stream owns the descriptor and fsyncs it before closing (flush).
      const filters = pooled ? [pooled]
        : [...[...decryptFilters(opts.keys, `repo data of '${opts.destination}'`), ...decompressFilters(opts.compressType)].map((f) => f.stream), sha.stream, size.stream];
      await pipeline([source(), ...filters,
        fs.createWriteStream(opts.destination, { mode: opts.mode, flush: true, highWaterMark: 1024 * 1024 })],
      opts.signal ? { signal: opts.signal } : {});
    } catch (err) {
      // A decompression failure means the repo bytes are damaged: say so, naming the file.
      if (err instanceof OpenrdsError || opts.signal?.aborted || !isDecodeError(err)) throw err;
      throw new ChecksumError(`repo data of '${opts.destination}' is corrupt: ${(err as Error).message}`,
        { hint: 'the repo copy of this file is damaged: restore from another backup set (--set) and run verify' });
    }
    const got = pooled ? { size: pooled.result().outSize, sha256: pooled.result().outSha256 } : { size: size.result(), sha256: sha.result() };
    if (got.size !== opts.size || got.sha256 !== opts.sha256) {
      throw new ChecksumError(
        `restored file '${opts.destination}' has size ${got.size} sha256 ${got.sha256}, but the backup manifest says size ${opts.size} sha256 ${opts.sha256}`,
        { hint: 'the repo copy of this file is corrupt: restore from another backup set (--set) and run verify' });
    }
  } else {
    if (opts.sha256 && opts.sha256 !== SHA256_EMPTY) {
      throw new ChecksumError(`manifest lists '${opts.destination}' with size 0 but a non-empty checksum`);
    }
    const fh = await fs.promises.open(opts.destination, 'w', opts.mode);
    try { await fh.sync(); } finally { await fh.close(); }
  }
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
    throw new ChecksumError(`repo data of '${opts.destination}' is corrupt: ${err.message}`,
      { hint: 'the repo copy of this file is damaged: restore from another backup set (--set) and run verify' });
  }
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (data.length !== opts.size || sha256 !== opts.sha256) {
    throw new ChecksumError(
      `restored file '${opts.destination}' has size ${data.length} sha256 ${sha256}, but the backup manifest says size ${opts.size} sha256 ${opts.sha256}`,
      { hint: 'the repo copy of this file is corrupt: restore from another backup set (--set) and run verify' });
  }
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
