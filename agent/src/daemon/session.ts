import { AccessDeniedError, OPENRDS_VERSION, errorFromGrpc, grpcWrite, log, memorySettle, sleep, tlsClientCertProblem } from '@openrds/common';
import type { AgentHello, AgentMessage, Heartbeat, PgControlInfo, ServerMessage__Output } from '@openrds/common';
import { JobRunner, type JobContext } from './jobs';

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 5_000;

/**
 * The agent's session with the repo-server: dials out, registers its stanza, runs the jobs sent
 * back on the stream, and reconnects with backoff when the stream ends. Jobs in flight when the
 * stream ends are aborted (their PostgreSQL sessions closed); the repo-server retries or fails them.
 */
const HEARTBEAT_MS = 5000;

export class AgentSession {
  private stopped = false;
  private cancel: (() => void) | undefined;
  private connectedOnce = false;
  /** What the heartbeat reports besides the time (the async archiving backlog). */
  heartbeatStatus: (() => Pick<Heartbeat, 'archiveSpool'>) | undefined;

  constructor(private readonly ctx: JobContext, private readonly hello: AgentHello) {}

  /** Runs until `stop()`. */
  async run(): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    while (!this.stopped) {
      const connected = await this.runOnce();
      if (this.stopped) break;
      if (connected) backoff = BACKOFF_MIN_MS;
      log.detail(`reconnecting to the repo-server in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  stop(): void {
    this.stopped = true;
    this.cancel?.();
  }

  /** One connection; resolves when it ends, true when it had been accepted. */
  private async runOnce(): Promise<boolean> {
    const call = this.ctx.client.session();
    this.cancel = () => call.cancel();
    const runner = new JobRunner(this.ctx);
    const jobs = new Map<string, AbortController>();
    let accepted = false;
    call.on('error', () => undefined);
    const send = (msg: AgentMessage): Promise<void> => grpcWrite(call, msg);
    // A heartbeat every few seconds: the repo-server's last contact, and the archiving backlog for info.
    const beat = setInterval(() => {
      if (accepted) void send({ heartbeat: { timeMs: Date.now(), ...this.heartbeatStatus?.() } }).catch(() => undefined);
    }, HEARTBEAT_MS);
    beat.unref();
    try {
      await send({ hello: this.hello });
      for await (const msg of call as AsyncIterable<ServerMessage__Output>) {
        if (msg.helloAck) {
          accepted = true;
          if (!this.connectedOnce) log.info(`connected to repo-server ${this.ctx.client.getChannel().getTarget()} for stanza '${this.ctx.stanza}'`);
          else log.info(`reconnected to repo-server for stanza '${this.ctx.stanza}'`);
          this.connectedOnce = true;
        } else if (msg.job) {
          const job = msg.job;
          const controller = new AbortController();
          jobs.set(job.jobId, controller);
          log.debug(`job ${job.kind} '${job.jobId}' started`);
          // A job id can come back (the jobs of one restore share the id that authorizes its files).
          void runner.run(job, (event) => send({ event: { jobId: job.jobId, ...event } }), controller.signal)
            .finally(() => {
              if (jobs.get(job.jobId) === controller) jobs.delete(job.jobId);
              memorySettle();
            });
        } else if (msg.cancel) {
          jobs.get(msg.cancel.jobId)?.abort(new Error(`cancelled by the repo-server: ${msg.cancel.reason}`));
        } else if (msg.heartbeat) {
          await send({ heartbeat: { timeMs: Date.now() } });
        }
      }
      if (accepted) log.warn('the repo-server closed the session');
    } catch (err) {
      if (!this.stopped) {
        const e = errorFromGrpc(err);
        // A refusal says why on this side too: the agent's own certificate may be the reason.
        const problem = e instanceof AccessDeniedError ? tlsClientCertProblem(this.ctx.config) : undefined;
        const text = `${e instanceof AccessDeniedError ? `[${e.code}] ` : ''}${e.toDisplay()}${problem ? `\nHINT: ${problem}` : ''}`;
        if (accepted || !this.connectedOnce) log.warn(`session with the repo-server ended: ${text}`);
        else log.detail(`unable to reach the repo-server: ${text}`);
      }
    } finally {
      clearInterval(beat);
      for (const c of jobs.values()) c.abort(new Error('session with the repo-server ended'));
      await runner.closeAll();
      call.cancel();
    }
    return accepted;
  }
}

/** The hello an agent sends: who it is and which stanza it serves, from pg_control. */
export function agentHelloNew(args: { agentId: string; hostname: string; stanza: string; pgPath: string;
  control: PgControlInfo; osUser: string }): AgentHello {
  return {
    agentId: args.agentId, hostname: args.hostname, version: OPENRDS_VERSION, pid: process.pid, osUser: args.osUser,
    stanzas: [{ stanza: args.stanza, pgPath: args.pgPath, control: args.control }],
  };
}
