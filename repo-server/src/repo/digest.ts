import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumFilter, SizeFilter, decompressFilters, decryptFilters } from '@openrds/common';
import type { ChecksumType, CipherKeyLookup, CompressType, Storage } from '@openrds/common';

/**
 * Reads one repo file through decryption (with `keys`, in an encrypted repository) and decompression: the checksum (of `checksumType`: sha256 unless said) and size of its content, and its first 64
 * bytes (a WAL header). Throws when the file is missing, unreadable or fails to decompress.
 */
export async function contentDigest(storage: Storage, key: string, compressType: CompressType, keys?: CipherKeyLookup,
  checksumType: ChecksumType = 'sha256'): Promise<{ sha256: string; size: number; head: Buffer }> {
  const sha = new ChecksumFilter(checksumType), size = new SizeFilter();
  const head: Buffer[] = [];
  let headLength = 0;
  await pipeline([await storage.newRead(key), ...[...decryptFilters(keys, `'${key}'`), ...decompressFilters(compressType)].map((f) => f.stream), sha.stream, size.stream,
    new Writable({ write: (c: Buffer, _e, cb) => { if (headLength < 64) { head.push(c.subarray(0, 64)); headLength += c.length; } cb(); } })]);
  return { sha256: sha.result(), size: size.result(), head: Buffer.concat(head).subarray(0, 64) };
}
