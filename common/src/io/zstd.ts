import { Transform, type TransformCallback } from 'node:stream';
import {
  CCtx, CParameter, DCtx, EndDirective, ResetDirective, compressBound, cStreamInSize, cStreamOutSize, dStreamInSize, dStreamOutSize,
} from 'zstd-napi/binding';
import { InternalError, OptionInvalidError } from '../error';
import type { IoFilter } from './filter';

export const ZSTD_LEVEL_MIN = 1;
export const ZSTD_LEVEL_MAX = 19;
export const ZSTD_LEVEL_DEFAULT = 3;

/**
 * Damaged, truncated or empty zstd input. Deliberately not an OpenrdsError: the decompressor does
 * not know which file it reads, so the caller that does rethrows it as a ChecksumError naming the
 * file (agent restore relies on decode errors carrying no `code`).
 */
export class ZstdDataError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'ZstdDataError';
  }
}

/**
 * Idle native contexts for reuse. A context holds megabytes of native memory: making one per
 * file of a cluster of thousands of small files costs more than compressing them, and the
 * external memory drives V8 into constant full garbage collections.
 */
const CONTEXTS_IDLE_MAX = 16;
const cctxIdle = new Map<number, CCtx[]>();
const dctxIdle: DCtx[] = [];

function cctxAcquire(level: number): CCtx {
  const ctx = cctxIdle.get(level)?.pop();
  if (ctx) return ctx;
  const fresh = new CCtx();
  fresh.setParameter(CParameter.compressionLevel, level);
  // The frame checksum lets a decompressor detect damage that the repo checksum would only
  // report later, and lets `zstd -t` check a repo file on its own.
  fresh.setParameter(CParameter.checksumFlag, 1);
  return fresh;
}

function cctxRelease(level: number, ctx: CCtx): void {
  // A session cut short (an error, a destroyed stream) must not leak into the next frame.
  ctx.reset(ResetDirective.sessionOnly);
  const idle = cctxIdle.get(level) ?? [];
  if (idle.length < CONTEXTS_IDLE_MAX) { idle.push(ctx); cctxIdle.set(level, idle); }
}

function dctxAcquire(): DCtx {
  return dctxIdle.pop() ?? new DCtx();
}

function dctxRelease(ctx: DCtx): void {
  ctx.reset(ResetDirective.sessionOnly);
  if (dctxIdle.length < CONTEXTS_IDLE_MAX) dctxIdle.push(ctx);
}

/** Longest run of zstd work before yielding to the event loop, so heartbeats and I/O keep flowing. */
const SLICE_BUDGET_MS = 10;

/**
 * The zstd transforms drive the native streaming API directly (not zstd-napi's own streams)
 * because those process a whole input chunk and push all of its output in one synchronous call:
 * a 100 MB write, or a small frame of zeros that expands to gigabytes, would then block the
 * event loop and land in memory at once. Here work is done one slice (about 128 KiB) at a time,
 * the loop pauses whenever the reader is full (push() returned false) and resumes from _read(),
 * and it yields to the event loop when a run of slices takes too long.
 */
abstract class ZstdSlicedTransform extends Transform {
  /** Continues the step loop once the reader asks for more. */
  private stepPending: (() => void) | undefined;
  /** Reused output buffer; replaced whenever a large part of it was handed downstream. */
  private out: Buffer;

  constructor(private readonly outSize: number) {
    super({ writableHighWaterMark: outSize, readableHighWaterMark: outSize });
    this.out = Buffer.allocUnsafe(outSize);
  }

  override _read(size: number): void {
    const stepPending = this.stepPending;
    this.stepPending = undefined;
    stepPending?.();
    // Transform's own _read releases a write callback it deferred while the reader was full.
    // eslint-disable-next-line no-underscore-dangle
    super._read(size);
  }

  /** Output buffer for the next native call. */
  protected outBuffer(): Buffer { return this.out; }

  /** Hands `produced` bytes of the output buffer downstream; false when the reader is full. */
  protected outputPush(produced: number): boolean {
    if (produced === 0) return true;
    // A mostly full buffer goes downstream as is; a small piece is copied so the big buffer
    // is not pinned in the reader's queue for a few bytes.
    let piece: Buffer;
    if (produced >= this.outSize / 2) {
      piece = this.out.subarray(0, produced);
      this.out = Buffer.allocUnsafe(this.outSize);
    } else {
      piece = Buffer.from(this.out.subarray(0, produced));
    }
    return this.push(piece);
  }

  /**
   * Runs `step` until it reports no more work, pausing while the reader is full and yielding to
   * the event loop between budgets. `step` returns 'done', 'more' or 'full' (more, reader full).
   */
  protected drive(step: () => 'done' | 'more' | 'full', done: TransformCallback): void {
    const loop = (): void => {
      if (this.destroyed) return;
      const deadline = Date.now() + SLICE_BUDGET_MS;
      try {
        for (;;) {
          const state = step();
          if (state === 'done') { done(); return; }
          if (state === 'full') { this.stepPending = loop; return; }
          if (Date.now() >= deadline) { setImmediate(loop); return; }
        }
      } catch (err) {
        done(this.wrapError(err));
      }
    };
    loop();
  }

  protected abstract wrapError(err: unknown): Error;
}

class ZstdCompressTransform extends ZstdSlicedTransform {
  private readonly cctx: CCtx;
  private released = false;
  private static readonly inSlice = cStreamInSize();

  constructor(private readonly level: number) {
    super(cStreamOutSize());
    this.cctx = cctxAcquire(level);
  }

  /** Back to the pool once no native call can run on it any more. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    cctxRelease(this.level, this.cctx);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.release();
    cb(err);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let input = chunk;
    this.drive(() => {
      if (input.length === 0) return 'done';
      const [, produced, consumed] = this.cctx.compressStream2(this.outBuffer(), input.subarray(0, ZstdCompressTransform.inSlice),
        EndDirective.continue);
      input = input.subarray(consumed);
      const room = this.outputPush(produced);
      if (input.length === 0) return 'done';
      return room ? 'more' : 'full';
    }, done);
  }

  override _flush(done: TransformCallback): void {
    const empty = Buffer.alloc(0);
    this.drive(() => {
      const [remaining, produced] = this.cctx.compressStream2(this.outBuffer(), empty, EndDirective.end);
      const room = this.outputPush(produced);
      if (remaining === 0) { this.release(); return 'done'; }
      return room ? 'more' : 'full';
    }, done);
  }

  protected wrapError(err: unknown): Error {
    return new InternalError(`unable to compress with zstd: ${(err as Error).message}`, { cause: err });
  }
}

class ZstdDecompressTransform extends ZstdSlicedTransform {
  private readonly dctx = dctxAcquire();
  private released = false;
  private static readonly inSlice = dStreamInSize();
  /** A frame was started and not finished: ending here means the data was cut short. */
  private inFrame = false;
  private seenInput = false;

  constructor() {
    super(dStreamOutSize());
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length > 0) this.seenInput = true;
    let input = chunk;
    const outSize = this.outBuffer().length;
    this.drive(() => {
      if (input.length === 0 && !this.inFrame) return 'done';
      const [remaining, produced, consumed] = this.dctx.decompressStream(this.outBuffer(),
        input.subarray(0, ZstdDecompressTransform.inSlice));
      input = input.subarray(consumed);
      this.inFrame = remaining !== 0;
      const room = this.outputPush(produced);
      // A full output buffer may mean zstd holds more output for the input it already took.
      if (input.length === 0 && produced < outSize) return 'done';
      return room ? 'more' : 'full';
    }, done);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.release();
    cb(err);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    dctxRelease(this.dctx);
  }

  override _flush(done: TransformCallback): void {
    this.release();
    if (!this.seenInput) return done(new ZstdDataError('zstd data is empty: expected at least one frame'));
    if (this.inFrame) return done(new ZstdDataError('zstd data ends in the middle of a frame: it is truncated'));
    done();
  }

  protected wrapError(err: unknown): Error {
    return new ZstdDataError(`zstd data is damaged: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks a compress level against the range the config allows. */
function zstdLevelCheck(level: number): number {
  if (!Number.isInteger(level) || level < ZSTD_LEVEL_MIN || level > ZSTD_LEVEL_MAX) {
    throw new OptionInvalidError(`invalid zstd compress level '${level}'`, { hint: `use a level from ${ZSTD_LEVEL_MIN} to ${ZSTD_LEVEL_MAX}` });
  }
  return level;
}

/** Transforms: compresses into one zstd frame (with content checksum), emitting output as blocks complete. */
export class ZstdCompressFilter implements IoFilter<void> {
  readonly name = 'zstd-compress';
  readonly stream: Transform;
  constructor(opts: { level?: number } = {}) {
    this.stream = new ZstdCompressTransform(zstdLevelCheck(opts.level ?? ZSTD_LEVEL_DEFAULT));
  }
  result(): void { return undefined; }
}

/** Transforms: decompresses zstd frames; damaged, truncated or empty input errors the stream with ZstdDataError. */
export class ZstdDecompressFilter implements IoFilter<void> {
  readonly name = 'zstd-decompress';
  readonly stream: Transform = new ZstdDecompressTransform();
  result(): void { return undefined; }
}


/**
 * Compresses a whole buffer into one zstd frame (with content size and checksum): for small
 * files, where a stream costs more than the compression.
 */
export function zstdCompressBuffer(data: Buffer, level: number = ZSTD_LEVEL_DEFAULT): Buffer {
  zstdLevelCheck(level);
  const ctx = cctxAcquire(level);
  try {
    const out = Buffer.allocUnsafe(compressBound(data.length));
    const n = ctx.compress2(out, data);
    return Buffer.from(out.subarray(0, n));
  } catch (err) {
    throw new InternalError(`unable to compress with zstd: ${(err as Error).message}`, { cause: err });
  } finally {
    cctxRelease(level, ctx);
  }
}

/**
 * Decompresses a whole buffer of zstd frames that must hold exactly `size` bytes; damaged data,
 * or content of another size, is a ZstdDataError. `into`, when it has room for `size` bytes and
 * one more, takes the content (the result is a view of it): a caller that only looks at the
 * bytes (hashes them) makes no garbage for each buffer it checks.
 */
export function zstdDecompressBuffer(data: Buffer, size: number, into?: Buffer): Buffer {
  if (data.length === 0) throw new ZstdDataError('zstd data is empty: expected at least one frame');
  const ctx = dctxAcquire();
  try {
    // One byte more than expected: content that fills it is larger than the manifest says.
    const out = into && into.length > size ? into : Buffer.allocUnsafe(size + 1);
    let produced = 0, input = data, inFrame = false;
    while (input.length > 0) {
      const [remaining, n, consumed] = ctx.decompressStream(out.subarray(produced), input);
      produced += n;
      input = input.subarray(consumed);
      inFrame = remaining !== 0;
      if (produced > size) throw new ZstdDataError(`zstd data holds more than the expected ${size} bytes`);
      if (consumed === 0 && n === 0) break;
    }
    if (inFrame || input.length > 0) throw new ZstdDataError('zstd data ends in the middle of a frame: it is truncated');
    return out.subarray(0, produced);
  } catch (err) {
    if (err instanceof ZstdDataError) throw err;
    throw new ZstdDataError(`zstd data is damaged: ${(err as Error).message}`, { cause: err });
  } finally {
    dctxRelease(ctx);
  }
}
