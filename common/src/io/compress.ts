import { AssertError } from '../error';
import type { IoFilter } from './filter';
import { ZstdCompressFilter, ZstdDecompressFilter } from './zstd';

/** Compression of a file in the repository. */
export type CompressType = 'none' | 'zst';

export const COMPRESS_TYPES: readonly CompressType[] = ['none', 'zst'];

/** File name extension of a compress type in the repo. */
export const compressExtension: Record<CompressType, string> = { none: '', zst: '.zst' };

/** The filters that compress bytes for a repo file of the given type (none: no filter). */
export function compressFilters(type: CompressType, level: number): IoFilter[] {
  if (type === 'zst') return [new ZstdCompressFilter({ level })];
  if (type === 'none') return [];
  throw new AssertError(`unknown compress type '${String(type)}'`);
}

/** The filters that decompress a repo file of the given type (none: no filter). */
export function decompressFilters(type: CompressType): IoFilter[] {
  if (type === 'zst') return [new ZstdDecompressFilter()];
  if (type === 'none') return [];
  throw new AssertError(`unknown compress type '${String(type)}'`);
}

/** The compress type of a repo file name, by its extension. */
export function compressTypeOf(name: string): CompressType {
  return name.endsWith(compressExtension.zst) ? 'zst' : 'none';
}
