import type * as grpc from '@grpc/grpc-js';
import { errorFromGrpc } from './error-transport';

/**
 * Starts a client-streaming call and returns it with a promise of its single response; a gRPC
 * error is rebuilt as the OpenrdsError the far side threw, and `failure()` tells whether the call
 * has already failed (the far side's reason beats a local write error it caused).
 */
export function grpcClientStream<Req, Res>(
  start: (cb: grpc.requestCallback<Res>) => grpc.ClientWritableStream<Req>,
): { call: grpc.ClientWritableStream<Req>; response: Promise<Res>; failure: () => Error | undefined } {
  let failed: Error | undefined;
  let resolve!: (r: Res) => void;
  let reject!: (e: Error) => void;
  const response = new Promise<Res>((res, rej) => { resolve = res; reject = rej; });
  const call = start((err, res) => {
    if (err) {
      const e = errorFromGrpc(err);
      failed = e;
      reject(e);
      // Fails whatever still writes to the call instead of leaving it waiting for 'drain'.
      call.destroy(e);
    } else {
      resolve(res as Res);
    }
  });
  // A write after the call failed would otherwise surface as an unhandled 'error' event, and a
  // caller still busy writing would leave the rejection unhandled until it awaits the response.
  call.on('error', () => undefined);
  response.catch(() => undefined);
  return { call, response, failure: () => failed };
}

/** Writes one message honouring backpressure. */
export async function grpcWrite<M>(call: { write(m: M): boolean; once(ev: 'drain', f: () => void): unknown }, msg: M): Promise<void> {
  if (!call.write(msg)) await new Promise<void>((r) => call.once('drain', r));
}

/** Deadline `ms` from now, for call options. */
export function grpcDeadline(ms: number): Date {
  return new Date(Date.now() + ms);
}

/** gRPC status codes, for packages that use grpc-js only through common. */
export { status as grpcStatus } from '@grpc/grpc-js';
