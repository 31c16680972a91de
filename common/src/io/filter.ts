import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { AssertError } from '../error';

/** A stage of a byte pipeline: it observes (hash, size) or transforms (compress), and reports a result. */
export interface IoFilter<R = unknown> {
  readonly name: string;
  readonly stream: Transform;
  /** Valid after the stream has finished. */
  result(): R;
}

export type CompressType = 'none' | 'zst';

/** Observes: sha256 of every byte that passes, as hex. */
export class Sha256Filter implements IoFilter<string> {
  readonly name = 'sha256';
  private readonly hash = createHash('sha256');
  private digest: string | undefined;
  readonly stream: Transform;

  constructor() {
    this.stream = new Transform({
      transform: (chunk: Buffer, _enc, cb: TransformCallback) => { this.hash.update(chunk); cb(null, chunk); },
      flush: (cb: TransformCallback) => { this.digest = this.hash.digest('hex'); cb(); },
    });
  }

  result(): string {
    if (this.digest === undefined) throw new AssertError('sha256 filter result read before the stream finished');
    return this.digest;
  }
}

/** Observes: the number of bytes that pass. */
export class SizeFilter implements IoFilter<number> {
  readonly name = 'size';
  private size = 0;
  readonly stream: Transform;

  constructor() {
    this.stream = new Transform({
      transform: (chunk: Buffer, _enc, cb: TransformCallback) => { this.size += chunk.length; cb(null, chunk); },
    });
  }

  result(): number { return this.size; }
}

/** Transforms: a zstd frame (with content checksum) at the given level. */
export class ZstdCompressFilter implements IoFilter<void> {
  readonly name = 'zstd-compress';
  readonly stream: Transform;
  constructor(opts: { level?: number } = {}) {
    this.stream = new CompressStream({ compressionLevel: opts.level ?? 3, checksumFlag: true });
  }
  result(): void { return undefined; }
}

/** Transforms: decompresses zstd frames; damaged input errors the stream. */
export class ZstdDecompressFilter implements IoFilter<void> {
  readonly name = 'zstd-decompress';
  readonly stream: Transform = new DecompressStream();
  result(): void { return undefined; }
}

/** The filters that compress for a repo file of the given type. */
export function compressFilters(type: CompressType, level: number): IoFilter[] {
  if (type === 'zst') return [new ZstdCompressFilter({ level })];
  if (type === 'none') return [];
  throw new AssertError(`unknown compress type '${String(type)}'`);
}

/** The filters that decompress a repo file of the given type. */
export function decompressFilters(type: CompressType): IoFilter[] {
  if (type === 'zst') return [new ZstdDecompressFilter()];
  if (type === 'none') return [];
  throw new AssertError(`unknown compress type '${String(type)}'`);
}

/** File name extension of a compress type in the repo. */
export const compressExtension: Record<CompressType, string> = { none: '', zst: '.zst' };

/** sha256 and size of a file, streamed. */
export async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const sha = new Sha256Filter(), size = new SizeFilter();
  await pipeline(fs.createReadStream(path, { highWaterMark: 1024 * 1024 }), sha.stream, size.stream,
    async function (src: AsyncIterable<Buffer>) { for await (const chunk of src) void chunk; });
  return { sha256: sha.result(), size: size.result() };
}
