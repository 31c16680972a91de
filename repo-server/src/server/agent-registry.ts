import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { AgentUnavailableError, errorFromDetail, log } from '@openrds/common';
import type { AgentHello__Output, AgentMessage__Output, Job, JobEvent__Output, ServerMessage } from '@openrds/common';

/** Options of one job sent to an agent. */
export interface JobOptions {
  onEvent?: (event: JobEvent__Output) => void | Promise<void>;
  signal?: AbortSignal;
  /** The job id, when the caller must know it before the job is sent (file transfers). */
  jobId?: string;
}

type JobPayload = Omit<Job, 'jobId' | 'stanza'>;

interface PendingJob {
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  opts: JobOptions;
  /** Events are handled in order: the next waits for the previous handler. */
  chain: Promise<void>;
}

/** One connected agent: its hello, and the jobs in flight on its session stream. */
export class AgentConnection {
  readonly sessionId = randomUUID();
  readonly connectedAt = Date.now();
  lastContact = Date.now();
  /** The asynchronous archiving backlog the agent last reported (archive-async=y). */
  archiveSpool: { ready: number; oldest: string; failing: number; readyBytes: number; at: number } | undefined;
  private readonly pending = new Map<string, PendingJob>();
  private closedWith: Error | undefined;

  constructor(readonly hello: AgentHello__Output, private readonly call: grpc.ServerDuplexStream<AgentMessage__Output, ServerMessage>,
    readonly peer: string) {}

  get stanzas(): string[] { return this.hello.stanzas.map((s) => s.stanza); }

  registration(stanza: string) { return this.hello.stanzas.find((s) => s.stanza === stanza); }

  /** Sends a job and resolves with its parsed result, or rejects with the error the agent reported. */
  job<T = Record<string, unknown>>(stanza: string, payload: JobPayload, opts: JobOptions = {}): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const jobId = opts.jobId ?? randomUUID();
    return new Promise<T>((resolve, reject) => {
      const pending: PendingJob = { resolve: resolve as (r: unknown) => void, reject, opts, chain: Promise.resolve() };
      this.pending.set(jobId, pending);
      const onAbort = (): void => {
        this.call.write({ cancel: { jobId, reason: String(opts.signal?.reason ?? 'aborted') } });
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => { opts.signal?.removeEventListener('abort', onAbort); };
      pending.resolve = (r) => { cleanup(); resolve(r as T); };
      pending.reject = (e) => { cleanup(); reject(e); };
      this.call.write({ job: { jobId, stanza, ...payload } });
    });
  }

  /** Routes one event from the agent to the job it belongs to. */
  onEvent(ev: JobEvent__Output): void {
    this.lastContact = Date.now();
    const pending = this.pending.get(ev.jobId);
    if (!pending) return;
    pending.chain = pending.chain.then(async () => {
      if (ev.done) {
        this.pending.delete(ev.jobId);
        pending.resolve(ev.done.resultJson ? JSON.parse(ev.done.resultJson) : {});
      } else if (ev.error) {
        this.pending.delete(ev.jobId);
        // Its class (a newer agent's unknown one keeps its name and exit code), message and hint.
        pending.reject(errorFromDetail(ev.error));
      } else {
        await pending.opts.onEvent?.(ev);
      }
    }).catch((err: Error) => {
      this.pending.delete(ev.jobId);
      pending.reject(err);
    });
  }

  /** The session ended: every job in flight fails. */
  close(reason: string): void {
    this.closedWith = new AgentUnavailableError(`agent '${this.hello.agentId}' disconnected: ${reason}`,
      { hint: 'check that openrds-agent is running on the database host, then retry' });
    for (const p of this.pending.values()) p.reject(this.closedWith);
    this.pending.clear();
  }
}

/** How long a command waits for the agent of its stanza to (re)connect, e.g. after a restart. */
export const AGENT_WAIT_MS = 10_000;

/** The agents connected to this repo-server, by stanza. */
export class AgentRegistry {
  private readonly connections = new Set<AgentConnection>();

  add(conn: AgentConnection): void {
    this.connections.add(conn);
    log.info(`agent '${conn.hello.agentId}' (${conn.hello.version}, ${conn.peer}) connected for stanza ${conn.stanzas.map((s) => `'${s}'`).join(', ')}`);
  }

  remove(conn: AgentConnection, reason: string): void {
    if (!this.connections.delete(conn)) return;
    conn.close(reason);
    log.info(`agent '${conn.hello.agentId}' disconnected: ${reason}`);
  }

  /** The agent serving a stanza (the most recently connected one). */
  forStanza(stanza: string): AgentConnection {
    let found: AgentConnection | undefined;
    for (const c of this.connections) if (c.stanzas.includes(stanza) && (!found || c.connectedAt > found.connectedAt)) found = c;
    if (!found) {
      throw new AgentUnavailableError(`no agent is connected for stanza '${stanza}'`,
        { hint: `start 'openrds-agent serve --stanza=${stanza}' on the database host and check that it reaches this repo-server` });
    }
    return found;
  }

  /** Waits up to `ms` for an agent of the stanza to connect (an agent restarting, say). */
  async waitForStanza(stanza: string, ms: number): Promise<AgentConnection> {
    const until = Date.now() + ms;
    if (!this.list().some((c) => c.stanzas.includes(stanza))) log.detail(`waiting up to ${ms / 1000}s for the agent of stanza '${stanza}'`);
    for (;;) {
      try {
        return this.forStanza(stanza);
      } catch (err) {
        if (Date.now() >= until) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  list(): AgentConnection[] {
    return [...this.connections];
  }
}
