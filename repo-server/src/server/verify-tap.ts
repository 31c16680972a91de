import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PassThrough, Writable } from 'node:stream';
import type { IoFilter } from '@openrds/common';

/**
 * A pass-through that also feeds every byte into a side pipeline (decompress, hash, inspect),
 * and in its flush waits for that side to finish and runs `check`: a failing check errors the
 * main pipeline before the storage write downstream can commit.
 */
export class VerifyTap extends Transform {
  private readonly side = new PassThrough({ highWaterMark: 1024 * 1024 });
  private readonly sideDone: Promise<void>;

  constructor(filters: IoFilter[], private readonly check: () => void | Promise<void>) {
    super({ highWaterMark: 1024 * 1024 });
    this.sideDone = pipeline([this.side, ...filters.map((f) => f.stream), new Writable({ write: (_c, _e, cb) => cb() })]);
    this.sideDone.catch((err: Error) => this.destroy(err));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.push(chunk);
    if (this.side.write(chunk)) cb();
    else this.side.once('drain', () => cb());
  }

  override _flush(cb: TransformCallback): void {
    this.side.end();
    this.sideDone.then(() => this.check()).then(() => cb(), (err: Error) => cb(err));
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.side.destroy();
    cb(err);
  }
}
