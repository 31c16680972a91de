import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { AssertError, OptionInvalidError } from '../error';
import type { IoFilter } from './filter';
import { Lz4CompressFilter, Lz4DecompressFilter, lz4CompressBuffer, lz4DecompressBuffer } from './lz4';
import { ZstdCompressFilter, ZstdDataError, ZstdDecompressFilter, zstdCompressBuffer, zstdDecompressBuffer } from './zstd';

/** Compression of a file in the repository (zst and none run on the worker pools; lz4 and gz on the main thread and zlib's threads). */
export type CompressType = 'none' | 'zst' | 'lz4' | 'gz';

export const COMPRESS_TYPES: readonly CompressType[] = ['none', 'zst', 'lz4', 'gz'];

/** File name extension of a compress type in the repo. */
export const compressExtension: Record<CompressType, string> = { none: '', zst: '.zst', lz4: '.lz4', gz: '.gz' };

const GZ_LEVEL_MAX = 9;

function gzLevel(level: number): number {
  if (!Number.isInteger(level) || level < 1 || level > GZ_LEVEL_MAX) {
    throw new OptionInvalidError(`invalid gz compress level '${level}'`, { hint: `use a level from 1 to ${GZ_LEVEL_MAX} with compress-type=gz` });
  }
  return level;
}

class ZlibFilter implements IoFilter<void> {
  constructor(readonly name: string, readonly stream: Transform) {}
  result(): void { return undefined; }
}

/** The filters that compress bytes for a repo file of the given type (none: no filter). */
export function compressFilters(type: CompressType, level: number): IoFilter[] {
  if (type === 'zst') return [new ZstdCompressFilter({ level })];
  if (type === 'lz4') return [new Lz4CompressFilter()];
  // zlib runs in libuv's thread pool: off the main thread already.
  if (type === 'gz') return [new ZlibFilter('gz-compress', zlib.createGzip({ level: gzLevel(level) }))];
  if (type === 'none') return [];
  throw new AssertError(`unknown compress type '${String(type)}'`);
}

/** The filters that decompress a repo file of the given type (none: no filter). */
export function decompressFilters(type: CompressType): IoFilter[] {
  if (type === 'zst') return [new ZstdDecompressFilter()];
  if (type === 'lz4') return [new Lz4DecompressFilter()];
  if (type === 'gz') return [new ZlibFilter('gz-decompress', zlib.createGunzip())];
  if (type === 'none') return [];
  throw new AssertError(`unknown compress type '${String(type)}'`);
}

/** Regular expression source of the extension of a compressed repo file (any type), for names. */
export const COMPRESS_EXTENSION_RE = `(?:${Object.values(compressExtension).filter(Boolean).map((e) => e.replace('.', '\\.')).join('|')})`;

/** Whether the worker pools take files of this type (zstd or none); lz4 and gz stream on the main thread. */
export function compressOnPool(type: CompressType): boolean {
  return type === 'zst' || type === 'none';
}

/** The compress type of a repo file name, by its extension. */
export function compressTypeOf(name: string): CompressType {
  if (name.endsWith(compressExtension.zst)) return 'zst';
  if (name.endsWith(compressExtension.gz)) return 'gz';
  if (name.endsWith(compressExtension.lz4)) return 'lz4';
  return 'none';
}

/** Compresses a whole (small) buffer. */
export function compressBuffer(type: CompressType, data: Buffer, level: number): Buffer {
  if (type === 'zst') return zstdCompressBuffer(data, level);
  if (type === 'lz4') return lz4CompressBuffer(data);
  if (type === 'gz') return zlib.gzipSync(data, { level: gzLevel(level) });
  return data;
}

/**
 * Decompresses a whole (small) buffer that must hold exactly `size` bytes; damaged data, or
 * content of another size, is a ZstdDataError (the decode error of every compress type).
 */
export function decompressBuffer(type: CompressType, data: Buffer, size: number): Buffer {
  if (type === 'zst') return zstdDecompressBuffer(data, size);
  if (type === 'lz4') return lz4DecompressBuffer(data, size);
  if (type === 'gz') {
    let out: Buffer;
    try {
      out = zlib.gunzipSync(data, { maxOutputLength: size + 1 });
    } catch (err) {
      throw new ZstdDataError(`gz data is damaged: ${(err as Error).message}`, { cause: err });
    }
    if (out.length !== size) throw new ZstdDataError(`gz data holds ${out.length} bytes, expected ${size}`);
    return out;
  }
  return data;
}

/** True for a decode error of a decompressor (zstd's carry no code, zlib's a Z_* code). */
export function isDecodeError(err: unknown): boolean {
  // Not `instanceof Error`: errors made by the native addon may come from another realm.
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined || (typeof code === 'string' && code.startsWith('Z_'));
}
