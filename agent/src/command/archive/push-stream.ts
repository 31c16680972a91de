import type * as grpc from '@grpc/grpc-js';
import { errorFromDetail, errorFromGrpc, grpcStatus } from '@openrds/common';
import type { AgentGatewayClient, ArchivePushHeader, ArchivePushResult__Output, ArchivePushesMessage, ArchivePushesReply__Output } from '@openrds/common';

/** A stream with nothing on its way is ended after this long (the next push opens another). */
const IDLE_MS = 30_000;

type Pending = { resolve: (r: ArchivePushResult__Output) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/**
 * The ArchivePushes stream of one client: staged pushes as messages on a stream kept open, an
 * answer per message matched by id. PostgreSQL's archive_command waits on these pushes, and on a
 * busy host a call per push (its headers, status and trailers, each a trip through both event
 * loops) cost ~5 ms more than a message on an open stream (bench/minimal-pusher.js, BENCHMARKS.md).
 * A failed stream fails every push on it (each is retried whole or again by its caller) and the
 * next push opens a new one. A repo-server without ArchivePushes (older) answers UNIMPLEMENTED:
 * `unimplemented` is then set and the caller sends its pushes as calls.
 */
export class ArchivePushStream {
  unimplemented = false;
  private call: grpc.ClientDuplexStream<ArchivePushesMessage, ArchivePushesReply__Output> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly client: AgentGatewayClient) {}

  /** Sends one push (its header and its whole `data`); resolves with the repo-server's answer. */
  push(header: ArchivePushHeader, data: Buffer, timeoutMs: number): Promise<ArchivePushResult__Output> {
    const call = this.open();
    const id = this.nextId++;
    return new Promise<ArchivePushResult__Output>((resolve, reject) => {
      // No answer in time: the stream is given up with every push on it (as a call's deadline would).
      const timer = setTimeout(() => this.fail(call, { code: grpcStatus.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }), timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      call.write({ id, header, data });
    });
  }

  /** Ends the stream (the daemon stops); pushes on their way fail. */
  close(): void {
    if (this.call) this.fail(this.call, { code: grpcStatus.CANCELLED, details: 'the agent is stopping' });
  }

  private open(): grpc.ClientDuplexStream<ArchivePushesMessage, ArchivePushesReply__Output> {
    clearTimeout(this.idle);
    this.idle = undefined;
    if (this.call) return this.call;
    const call = this.client.archivePushes();
    call.on('data', (reply: ArchivePushesReply__Output) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      clearTimeout(p.timer);
      if (reply.error) p.reject(errorFromDetail(reply.error));
      else p.resolve(reply.result ?? { duplicate: false, warning: '', repoKey: '' });
      this.idleArm(call);
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpcStatus.UNIMPLEMENTED) this.unimplemented = true;
      this.fail(call, err);
    });
    call.on('end', () => this.fail(call, { code: grpcStatus.UNAVAILABLE, details: 'the repo-server ended the stream of pushes' }));
    this.call = call;
    return call;
  }

  /** Nothing on its way: the stream ends after IDLE_MS unless a push comes. */
  private idleArm(call: grpc.ClientDuplexStream<ArchivePushesMessage, ArchivePushesReply__Output>): void {
    if (this.pending.size > 0 || this.call !== call) return;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (this.pending.size > 0 || this.call !== call) return;
      this.call = undefined;
      call.end();
    }, IDLE_MS);
    this.idle.unref();
  }

  private fail(call: grpc.ClientDuplexStream<ArchivePushesMessage, ArchivePushesReply__Output>, err: Partial<grpc.ServiceError>): void {
    if (this.call !== call) return;
    this.call = undefined;
    clearTimeout(this.idle);
    const e = errorFromGrpc(err);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
    call.cancel();
  }
}

const streams = new WeakMap<AgentGatewayClient, ArchivePushStream>();

/** The ArchivePushes stream of `client` (one per client, made at its first push). */
export function archivePushStream(client: AgentGatewayClient): ArchivePushStream {
  let s = streams.get(client);
  if (!s) streams.set(client, s = new ArchivePushStream(client));
  return s;
}

/** Ends the ArchivePushes stream of `client`, if it has one (before the client is closed). */
export function archivePushStreamClose(client: AgentGatewayClient): void {
  streams.get(client)?.close();
}
