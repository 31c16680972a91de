import type * as grpc from '@grpc/grpc-js';
import { Readable, Writable } from 'node:stream';
import { CHUNK_SIZE } from './proto';

/**
 * A Writable that sends every buffer written to it as one or more messages on a gRPC writable
 * call, at most CHUNK_SIZE bytes each, honouring the call's backpressure. It does not end the call.
 */
export function grpcChunkWriter<M>(call: grpc.ClientWritableStream<M> | grpc.ServerWritableStream<unknown, M>,
  wrap: (data: Buffer) => M): Writable {
  let failure: Error | undefined;
  let waiting: ((err?: Error) => void) | undefined;
  const onEnd = (err?: Error): void => {
    failure ??= err ?? new Error('the call ended before all data was sent');
    const w = waiting;
    waiting = undefined;
    w?.(failure);
  };
  call.once('error', (err: Error) => onEnd(err));
  call.once('close', () => onEnd());
  return new Writable({
    highWaterMark: CHUNK_SIZE,
    write(chunk: Buffer, _enc, cb) {
      let offset = 0;
      const next = (): void => {
        waiting = undefined;
        if (failure) return cb(failure);
        while (offset < chunk.length) {
          const part = chunk.subarray(offset, offset + CHUNK_SIZE);
          offset += part.length;
          if (!call.write(wrap(part))) {
            waiting = cb;
            call.once('drain', next);
            return;
          }
        }
        cb();
      };
      next();
    },
  });
}

/** Messages of at most this many data bytes may be queued past the call's own limit, up to LANE_QUEUE_MAX messages. */
const LANE_SMALL_BYTES = 64 * 1024;
const LANE_QUEUE_MAX = 256;

/**
 * Several files sent one after the other on one gRPC writable call: `sink()` returns a fresh
 * Writable for the next file's bytes (ended by its pipeline, the call stays open), sharing one
 * set of listeners on the call however many files go through it.
 */
export class GrpcChunkLane<M> {
  private failure: Error | undefined;
  private waiting: ((err?: Error) => void) | undefined;

  constructor(private readonly call: grpc.ClientWritableStream<M> | grpc.ServerWritableStream<unknown, M>) {
    const onEnd = (err?: Error): void => {
      this.failure ??= err ?? new Error('the call ended before all data was sent');
      const w = this.waiting;
      this.waiting = undefined;
      w?.(this.failure);
    };
    call.once('error', (err: Error) => onEnd(err));
    call.once('close', () => onEnd());
  }

  /**
   * Writes one message honouring backpressure; rejects once the call failed. The call's queue
   * says to wait after 16 messages, which for many small files (a start, a chunk and an end each)
   * means a round of waiting every few files: a message of at most LANE_SMALL_BYTES (`bytes`, the
   * size of its data) may go on while fewer than LANE_QUEUE_MAX are queued (16 MiB at most).
   */
  async write(msg: M, bytes = Infinity): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.call.write(msg)) return;
    if (bytes <= LANE_SMALL_BYTES && this.call.writableLength < LANE_QUEUE_MAX) return;
    await new Promise<void>((resolve, reject) => {
      this.waiting = (err) => (err ? reject(err) : resolve());
      this.call.once('drain', () => { const w = this.waiting; this.waiting = undefined; w?.(); });
    });
  }

  /** A Writable that sends what is written to it as messages made by `wrap`. */
  sink(wrap: (data: Buffer) => M): Writable {
    return new Writable({
      highWaterMark: CHUNK_SIZE,
      write: (chunk: Buffer, _enc, cb) => {
        void (async () => {
          for (let offset = 0; offset < chunk.length; offset += CHUNK_SIZE) await this.write(wrap(chunk.subarray(offset, offset + CHUNK_SIZE)));
        })().then(() => cb(), (err: Error) => cb(err));
      },
    });
  }
}

/**
 * A Readable of the bytes carried by the messages of an iterator over a gRPC readable call (read
 * the header first with `iter.next()`, then hand the rest here). `pick` returns the bytes of a
 * message, undefined for a message that carries none, or null for the message that ends the bytes
 * (several files on one call: the rest of the messages stay unread for the next reader).
 */
export function grpcChunkReader<M>(iter: AsyncIterator<M>, pick: (msg: M) => Buffer | undefined | null,
  onDestroy?: () => void): Readable {
  return new Readable({
    highWaterMark: CHUNK_SIZE,
    async read() {
      try {
        for (;;) {
          const r = await iter.next();
          if (r.done) {
            this.push(null);
            return;
          }
          const data = pick(r.value);
          if (data === null) {
            this.push(null);
            return;
          }
          if (data && data.length > 0) {
            this.push(data);
            return;
          }
        }
      } catch (err) {
        this.destroy(err as Error);
      }
    },
    destroy(err, cb) {
      if (err) onDestroy?.();
      cb(err);
    },
  });
}

/** An iterator over the messages of a gRPC readable call. */
export function grpcMessages<M>(call: AsyncIterable<unknown>): AsyncIterator<M> {
  return (call as AsyncIterable<M>)[Symbol.asyncIterator]();
}
