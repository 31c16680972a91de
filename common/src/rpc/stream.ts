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

/**
 * A Readable of the bytes carried by the messages of an iterator over a gRPC readable call (read
 * the header first with `iter.next()`, then hand the rest here). `pick` returns the bytes of a
 * message, or undefined for a message that carries none.
 */
export function grpcChunkReader<M>(iter: AsyncIterator<M>, pick: (msg: M) => Buffer | undefined,
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
