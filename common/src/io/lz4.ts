import { Transform, type TransformCallback } from 'node:stream';
import { compressFrameSync, decompressFrameSync } from 'lz4-napi';
import { InternalError } from '../error';
import type { IoFilter } from './filter';
import { ZstdDataError } from './zstd';

/**
 * LZ4 in the LZ4 frame format (what `lz4` and pgBackRest's lz4 write): a file is a run of frames of
 * a MiB of content each, made in one call, so that neither side holds more than a frame and a
 * frame's work is one native call. Frames one after another are one stream to `lz4 -d`. LZ4 has
 * one speed here (lz4-napi has no levels): compress-level does not apply to it.
 */
const LZ4_FRAME_CONTENT = 1024 * 1024;
const LZ4_MAGIC = 0x184d2204;
/** Skippable frames (magic 0x184D2A50-5F): metadata other writers may add; a reader passes over them. */
const LZ4_SKIPPABLE_MASK = 0xfffffff0;
const LZ4_SKIPPABLE = 0x184d2a50;
/** LZ4's largest block (4 MiB); a size past it means damage, not a larger block. */
const LZ4_BLOCK_MAX = 4 * 1024 * 1024;
/** A frame larger than this is refused rather than held in memory (ours are about a MiB). */
const LZ4_FRAME_MAX = 64 * 1024 * 1024;

function lz4Damaged(what: string): ZstdDataError {
  return new ZstdDataError(`lz4 data is damaged: ${what}`);
}

/**
 * Length of the frame at the start of `buf` (an LZ4 frame or a skippable one), or undefined
 * while `buf` does not hold all of it; bytes that cannot start a frame are a ZstdDataError.
 */
export function lz4FrameLength(buf: Buffer): number | undefined {
  if (buf.length < 4) return undefined;
  const magic = buf.readUInt32LE(0);
  if (((magic & LZ4_SKIPPABLE_MASK) >>> 0) === LZ4_SKIPPABLE) {
    if (buf.length < 8) return undefined;
    const length = 8 + buf.readUInt32LE(4);
    return buf.length >= length ? length : undefined;
  }
  if (magic !== LZ4_MAGIC) throw lz4Damaged('not an lz4 frame');
  if (buf.length < 6) return undefined;
  const flags = buf[4]!;
  if (flags >> 6 !== 1) throw lz4Damaged(`lz4 frame version ${flags >> 6}`);
  const blockChecksum = (flags & 0x10) !== 0, contentChecksum = (flags & 0x04) !== 0;
  let off = 6 + ((flags & 0x08) !== 0 ? 8 : 0) + ((flags & 0x01) !== 0 ? 4 : 0) + 1;
  for (;;) {
    if (buf.length < off + 4) return undefined;
    const word = buf.readUInt32LE(off);
    off += 4;
    if (word === 0) break;
    const size = word & 0x7fffffff;
    if (size > LZ4_BLOCK_MAX) throw lz4Damaged(`a block of ${size} bytes`);
    off += size + (blockChecksum ? 4 : 0);
    if (off > LZ4_FRAME_MAX) throw lz4Damaged(`a frame larger than ${LZ4_FRAME_MAX} bytes`);
  }
  off += contentChecksum ? 4 : 0;
  return buf.length >= off ? off : undefined;
}

/** Content of one frame (a skippable frame has none). */
function lz4FrameDecode(frame: Buffer): Buffer {
  if (((frame.readUInt32LE(0) & LZ4_SKIPPABLE_MASK) >>> 0) === LZ4_SKIPPABLE) return Buffer.alloc(0);
  try {
    return decompressFrameSync(frame);
  } catch (err) {
    throw lz4Damaged((err as Error).message);
  }
}

function lz4FrameEncode(content: Buffer): Buffer {
  try {
    return compressFrameSync(content);
  } catch (err) {
    throw new InternalError(`unable to compress with lz4: ${(err as Error).message}`, { cause: err });
  }
}

/** Compresses a whole buffer into frames of a MiB of content (an empty buffer: one empty frame). */
export function lz4CompressBuffer(data: Buffer): Buffer {
  if (data.length <= LZ4_FRAME_CONTENT) return lz4FrameEncode(data);
  const frames: Buffer[] = [];
  for (let off = 0; off < data.length; off += LZ4_FRAME_CONTENT) frames.push(lz4FrameEncode(data.subarray(off, off + LZ4_FRAME_CONTENT)));
  return Buffer.concat(frames);
}

/** Decompresses a whole buffer of frames that must hold exactly `size` bytes (else ZstdDataError). */
export function lz4DecompressBuffer(data: Buffer, size: number): Buffer {
  if (data.length === 0) throw lz4Damaged('no frame at all');
  const parts: Buffer[] = [];
  let produced = 0;
  for (let rest = data; rest.length > 0;) {
    const length = lz4FrameLength(rest);
    if (length === undefined) throw lz4Damaged('it ends in the middle of a frame: it is truncated');
    const content = lz4FrameDecode(rest.subarray(0, length));
    produced += content.length;
    if (produced > size) throw lz4Damaged(`it holds more than the expected ${size} bytes`);
    parts.push(content);
    rest = rest.subarray(length);
  }
  if (produced !== size) throw lz4Damaged(`it holds ${produced} bytes, expected ${size}`);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, produced);
}

/** Transform: input in frames of a MiB of content; at least one frame, so empty content is an empty frame. */
class Lz4CompressTransform extends Transform {
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private framed = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      let rest = chunk;
      while (rest.length > 0) {
        const take = Math.min(rest.length, LZ4_FRAME_CONTENT - this.pendingLength);
        this.pending.push(rest.subarray(0, take));
        this.pendingLength += take;
        rest = rest.subarray(take);
        if (this.pendingLength === LZ4_FRAME_CONTENT) this.frameOut();
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.pendingLength > 0 || !this.framed) this.frameOut();
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  private frameOut(): void {
    const content = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
    this.pending = [];
    this.pendingLength = 0;
    this.framed = true;
    this.push(lz4FrameEncode(content));
  }
}

/** Transform: frames in, their content out; damaged, truncated or empty input is a ZstdDataError. */
class Lz4DecompressTransform extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  private seen = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length > 0) this.seen = true;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      for (;;) {
        const length = lz4FrameLength(this.pending);
        if (length === undefined) break;
        const content = lz4FrameDecode(this.pending.subarray(0, length));
        this.pending = this.pending.subarray(length);
        if (content.length > 0) this.push(content);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (!this.seen) return done(lz4Damaged('no frame at all'));
    if (this.pending.length > 0) return done(lz4Damaged('it ends in the middle of a frame: it is truncated'));
    done();
  }
}

export class Lz4CompressFilter implements IoFilter<void> {
  readonly name = 'lz4-compress';
  readonly stream: Transform = new Lz4CompressTransform();
  result(): void { return undefined; }
}

export class Lz4DecompressFilter implements IoFilter<void> {
  readonly name = 'lz4-decompress';
  readonly stream: Transform = new Lz4DecompressTransform();
  result(): void { return undefined; }
}
