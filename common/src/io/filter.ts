import * as fs from 'node:fs';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AssertError } from '../error';
import { ChecksumFilter } from './checksum';

/**
 * A stage of a byte pipeline, after pgBackRest's IoFilter: it either observes the bytes (hash,
 * size) and passes them on unchanged, or transforms them (compress, encrypt). Put `stream` in a
 * `pipeline(...)`; read `result()` once that pipeline has resolved.
 */
export interface IoFilter<R = unknown> {
  readonly name: string;
  readonly stream: Transform;
  /** Valid after the stream has finished. */
  result(): R;
}

/** Largest buffer sent as one message on the wire. */
export const IO_CHUNK_SIZE = 1024 * 1024;

/** Observes: sha256 of every byte that passes, as lowercase hex. */
export class Sha256Filter extends ChecksumFilter {
  constructor() { super('sha256'); }
}

/** Observes: the number of bytes that pass (the count so far until the stream finishes). */
export class SizeFilter implements IoFilter<number> {
  readonly name = 'size';
  readonly stream: Transform;
  private size = 0;

  constructor() {
    this.stream = new Transform({
      transform: (chunk: Buffer, _enc, cb: TransformCallback) => { this.size += chunk.length; cb(null, chunk); },
    });
  }

  result(): number { return this.size; }
}

/**
 * Transforms: passes the first `limit` bytes and drops the rest; the result says how many
 * bytes were passed and dropped. Upstream is still read to its end, so where the source is a
 * file prefer a ranged read (`Storage.newRead(key, {limit})`, `createReadStream({end})`), which
 * stops reading at the limit; this filter is for sources that cannot be ranged (a network stream).
 */
export class LimitFilter implements IoFilter<{ passed: number; dropped: number }> {
  readonly name = 'limit';
  readonly stream: Transform;
  private passed = 0;
  private dropped = 0;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new AssertError(`invalid limit '${limit}'`);
    this.stream = new Transform({
      transform: (chunk: Buffer, _enc, cb: TransformCallback) => {
        const room = this.limit - this.passed;
        if (chunk.length <= room) {
          this.passed += chunk.length;
          return cb(null, chunk);
        }
        this.passed += room;
        this.dropped += chunk.length - room;
        cb(null, room > 0 ? chunk.subarray(0, room) : undefined);
      },
    });
  }

  result(): { passed: number; dropped: number } { return { passed: this.passed, dropped: this.dropped }; }
}

/**
 * Transforms: re-chunks bytes into buffers of at most `size` bytes (the wire's message limit).
 * A large buffer is cut into views of itself (no copy); small buffers are gathered until `size`
 * is reached (one copy), so that a compressor's many small outputs do not become many tiny messages.
 * `coalesce: false` only cuts, and passes small buffers at once.
 */
export class ChunkFilter implements IoFilter<void> {
  readonly name = 'chunk';
  readonly stream: Transform;
  private pending: Buffer[] = [];
  private pendingSize = 0;

  constructor(opts: { size?: number; coalesce?: boolean } = {}) {
    const size = opts.size ?? IO_CHUNK_SIZE;
    const coalesce = opts.coalesce ?? true;
    if (!Number.isSafeInteger(size) || size < 1) throw new AssertError(`invalid chunk size '${size}'`);
    this.stream = new Transform({
      // The readable side holds at most a couple of chunks: backpressure reaches upstream early.
      readableHighWaterMark: size,
      transform: (chunk: Buffer, _enc, cb: TransformCallback) => {
        let rest = chunk;
        while (rest.length > 0) {
          if (this.pendingSize === 0 && (rest.length >= size || !coalesce)) {
            const part = rest.subarray(0, size);
            rest = rest.subarray(part.length);
            this.stream.push(part);
            continue;
          }
          const part = rest.subarray(0, size - this.pendingSize);
          rest = rest.subarray(part.length);
          this.pending.push(part);
          this.pendingSize += part.length;
          if (this.pendingSize === size) this.stream.push(this.pendingTake());
        }
        cb();
      },
      flush: (cb: TransformCallback) => { cb(null, this.pendingSize > 0 ? this.pendingTake() : undefined); },
    });
  }

  private pendingTake(): Buffer {
    const out = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingSize);
    this.pending = [];
    this.pendingSize = 0;
    return out;
  }

  result(): void { return undefined; }
}

/** A Writable that discards what it is given: the end of a pipeline that only observes. */
export function sinkDiscard(): Writable {
  return new Writable({ highWaterMark: IO_CHUNK_SIZE, write: (_chunk, _enc, cb) => cb() });
}

/** sha256 and size of a local file, streamed; fs errors (ENOENT, ...) propagate as they are. */
export async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const sha = new Sha256Filter(), size = new SizeFilter();
  await pipeline(fs.createReadStream(path, { highWaterMark: IO_CHUNK_SIZE }), sha.stream, size.stream, sinkDiscard());
  return { sha256: sha.result(), size: size.result() };
}
