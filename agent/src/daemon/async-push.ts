import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '@openrds/common';
import type { ArchivePushResult__Output } from '@openrds/common';
import { WaitFifos, spoolWaitStale, spoolWake } from './spool-wake';

/**
 * Asynchronous archiving (`archive-async=y`): the daemon watches `pg_wal/archive_status` and
 * pushes every `.ready` WAL file ahead of PostgreSQL (`process-max` compressions at a time, and as
 * many more on their way to the repo-server: see PUSHES_PER_PROCESS). Each durable
 * acknowledgement from the repo-server becomes `<spool-path>/archive/<stanza>/out/<name>.ok`
 * (written only after the push returned, so an `.ok` never exists for WAL the repo-server
 * does not have; see spoolWrite); a failure becomes `<name>.error` and is retried. The
 * archive_command then only has to find the `.ok`: `test -f <spool>/%f.ok || openrds-agent
 * archive-push %p ...` does it without starting Node at all.
 */
/**
 * Pushes on their way per process-max: the compression of one overlaps the transfer, the
 * repo-server's check and the commit of another. The compressions themselves run process-max at
 * a time (the push's pool is limited to that many workers): a push spends most of its time
 * waiting for the repo-server, and with one push per lane a cold backlog left a quarter of the
 * bench machine's two cores idle.
 */
export const PUSHES_PER_PROCESS = 2;
/** The daemon's liveness for the archive_command's shell (see aliveRefresh), and how long one write holds. */
export const ALIVE_FILE = 'daemon.alive';
const ALIVE_HOLD_S = 3;

export class AsyncPusher {
  readonly spoolDir: string;
  /** FIFOs placed for the archive_command's shell as each push starts (see WaitFifos). */
  private readonly fifos: WaitFifos;
  private readonly inFlight = new Map<string, Promise<ArchivePushResult__Output>>();
  private readonly retryAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private watcher: fs.FSWatcher | undefined;
  private stopped = false;
  private scanning = false;
  private rescan = false;
  private aliveNextAt = 0;
  /** The backlog as of the last scan, reported to the repo-server in heartbeats. */
  status: { ready: number; oldest: string; failing: number; readyBytes: number } = { ready: 0, oldest: '', failing: 0, readyBytes: 0 };

  constructor(private readonly opts: {
    pgPath: string; spoolPath: string; stanza: string; processMax: number;
    push: (walPath: string) => Promise<ArchivePushResult__Output>;
    intervalMs?: number; retryMs?: number;
    /** archive-push-queue-max in bytes, with the segment size to count the queue. */
    queueMax?: number; walSegmentSize?: number;
  }) {
    this.spoolDir = path.join(opts.spoolPath, 'archive', opts.stanza, 'out');
    this.fifos = new WaitFifos(this.spoolDir);
  }

  async start(): Promise<void> {
    await fs.promises.mkdir(this.spoolDir, { recursive: true, mode: 0o700 });
    await this.fifos.start();
    log.info(`asynchronous archiving: pushing ready WAL ahead of PostgreSQL, acknowledgements in '${this.spoolDir}'`);
    // A new .ready starts its push at once (inotify); the periodic scan stays as the safety net.
    try {
      this.watcher = fs.watch(path.join(this.opts.pgPath, 'pg_wal', 'archive_status'), (_event, name) => {
        if (typeof name === 'string' && name.endsWith('.ready')) {
          this.readyNow(name.slice(0, -'.ready'.length));
          void this.scan();
        }
      });
      this.watcher.on('error', () => { this.watcher?.close(); this.watcher = undefined; });
      this.watcher.unref();
    } catch (err) {
      log.detail(`unable to watch pg_wal/archive_status (${(err as Error).message}): scanning every ${this.opts.intervalMs ?? 100} ms`);
    }
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    fs.rmSync(path.join(this.spoolDir, ALIVE_FILE), { force: true });
    // Shells waiting for an acknowledgement start Node now rather than at their timeout.
    spoolWake(this.spoolDir);
    this.fifos.stop();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.aliveRefresh();
      void this.scan().finally(() => this.schedule(this.opts.intervalMs ?? 100));
    }, ms);
    this.timer.unref();
  }

  /**
   * `<spool>/daemon.alive` holds the second until which this daemon vouches to be pushing (a few
   * seconds ahead, renewed every second), as its content and as its modification time: the
   * archive_command's shell waits for an `.ok` only while it is fresh, and starts Node at once
   * when no daemon runs.
   */
  private aliveRefresh(): void {
    const now = Date.now();
    if (now < this.aliveNextAt) return;
    this.aliveNextAt = now + 1000;
    const file = path.join(this.spoolDir, ALIVE_FILE);
    // The same second as its modification time, which the shell compares with its FIFO's (made
    // just then) without starting `date`; the content says it to a reader.
    const until = Math.floor(now / 1000) + ALIVE_HOLD_S;
    fs.promises.writeFile(`${file}.tmp`, String(until), { mode: 0o600 })
      .then(() => fs.promises.utimes(`${file}.tmp`, now / 1000, until))
      .then(() => fs.promises.rename(`${file}.tmp`, file))
      .catch((err: unknown) => log.detail(`unable to write '${file}': ${(err as Error).message}`));
  }

  /**
   * A `.ready` file just appeared: its push starts now when a lane is free, rather than after the
   * scan's two directory listings (on a busy host each waits for the main thread, and PostgreSQL
   * calls archive_command for this file next). The scan that follows finds it under way.
   */
  private readyNow(name: string): void {
    // Events also come for a .ready renamed to .done.
    if (this.stopped || !fs.existsSync(path.join(this.opts.pgPath, 'pg_wal', 'archive_status', `${name}.ready`))) return;
    this.pushIfDue(name, Date.now());
  }

  /** Starts the push of `name` unless it runs, waits for its retry or is acknowledged; false when every lane is busy. */
  private pushIfDue(name: string, now: number): boolean {
    if (this.inFlight.size >= PUSHES_PER_PROCESS * Math.max(1, this.opts.processMax)) return false;
    if (this.inFlight.has(name) || (this.retryAt.get(name) ?? 0) > now) return true;
    // A push may have completed since the spool was listed.
    if (fs.existsSync(path.join(this.spoolDir, `${name}.ok`))) return true;
    void this.push(name).catch(() => undefined);
    return true;
  }

  /** Starts pushes for the ready files not acknowledged yet; cleans acknowledgements PostgreSQL is done with. */
  async scan(): Promise<void> {
    // A scan asked for while one runs happens right after it (a .ready may have come in between).
    if (this.scanning) { this.rescan = true; return; }
    this.scanning = true;
    this.rescan = false;
    try {
      const statusDir = path.join(this.opts.pgPath, 'pg_wal', 'archive_status');
      let status: string[];
      try { status = await fs.promises.readdir(statusDir); } catch { return; }
      const ready = status.filter((n) => n.endsWith('.ready')).map((n) => n.slice(0, -'.ready'.length));
      // History files first (a new timeline needs them), then in WAL order, as PostgreSQL does.
      ready.sort((a, b) => Number(b.endsWith('.history')) - Number(a.endsWith('.history')) || (a < b ? -1 : a > b ? 1 : 0));
      const spool = new Set(await fs.promises.readdir(this.spoolDir).catch(() => [] as string[]));
      const now = Date.now();
      const waiting = ready.filter((n) => !spool.has(`${n}.ok`));
      const segments = waiting.filter((n) => /^[0-9A-F]{24}$/.test(n)).length;
      this.status = {
        ready: waiting.length, oldest: waiting.filter((n) => /^[0-9A-F]{24}/.test(n)).sort()[0] ?? '',
        failing: waiting.filter((n) => spool.has(`${n}.error`)).length, readyBytes: segments * (this.opts.walSegmentSize ?? 0),
      };
      for (const name of ready) {
        if (!spool.has(`${name}.ok`) && !this.pushIfDue(name, now)) break;
      }
      // An acknowledgement whose .ready is gone has been used: PostgreSQL marked the file .done.
      const readySet = new Set(ready);
      for (const f of spool) {
        if (spoolWaitStale(this.spoolDir, f, now)) continue;
        const name = f.replace(/\.(ok|error)$/, '');
        if (f === name || readySet.has(name) || this.inFlight.has(name)) continue;
        await fs.promises.rm(path.join(this.spoolDir, f), { force: true });
      }
    } finally {
      this.scanning = false;
      if (this.rescan && !this.stopped) void this.scan();
    }
  }

  /**
   * Pushes one WAL file (or joins the push already under way) and records the outcome in the
   * spool. Used by the scan and by a synchronous archive-push that arrives first.
   */
  /** The queue is over archive-push-queue-max: the file counts as archived (acknowledged with the warning). */
  private async dropWhenQueueFull(name: string, err: Error): Promise<ArchivePushResult__Output | undefined> {
    const warning = await queueFullDrop({ pgPath: this.opts.pgPath, queueMax: this.opts.queueMax, walSegmentSize: this.opts.walSegmentSize }, name, err.message);
    if (!warning) return undefined;
    spoolWrite(path.join(this.spoolDir, `${name}.ok`), warning);
    spoolWake(this.spoolDir, name);
    await fs.promises.rm(path.join(this.spoolDir, `${name}.error`), { force: true });
    this.retryAt.delete(name);
    return { duplicate: false, warning, repoKey: '' };
  }

  push(name: string): Promise<ArchivePushResult__Output> {
    const running = this.inFlight.get(name);
    if (running) return running;
    // Pushed already (an archive_command that started just before the acknowledgement landed).
    const ok = path.join(this.spoolDir, `${name}.ok`);
    if (fs.existsSync(ok)) return Promise.resolve({ duplicate: false, warning: fs.readFileSync(ok, 'utf8'), repoKey: '' });
    const t0 = Date.now();
    // The shell of this file's archive_command, should it come before the acknowledgement, waits on it.
    this.fifos.place(name);
    const p = (async () => {
      try {
        const res = await this.opts.push(path.join(this.opts.pgPath, 'pg_wal', name));
        spoolWrite(path.join(this.spoolDir, `${name}.ok`), res.warning ?? '');
        spoolWake(this.spoolDir, name);
        const error = path.join(this.spoolDir, `${name}.error`);
        if (fs.existsSync(error)) fs.rmSync(error, { force: true });
        this.retryAt.delete(name);
        log.detail(`pushed WAL file '${name}' ahead of PostgreSQL (${Date.now() - t0} ms with its acknowledgement)`);
        return res;
      } catch (err) {
        const e = err as Error & { code?: number; hint?: string };
        const dropped = await this.dropWhenQueueFull(name, e);
        if (dropped) return dropped;
        log.warn(`asynchronous push of '${name}' failed (retried): ${e.message}`);
        this.retryAt.set(name, Date.now() + (this.opts.retryMs ?? 2000));
        try {
          spoolWrite(path.join(this.spoolDir, `${name}.error`),
            JSON.stringify({ name: e.name, code: e.code ?? 1, message: e.message, ...(e.hint ? { hint: e.hint } : {}) }));
        } catch { /* the next try writes it again */ }
        // Its shell starts Node, which reports the error (PostgreSQL retries).
        spoolWake(this.spoolDir, name);
        throw err;
      } finally {
        this.inFlight.delete(name);
        // A lane is free: the next ready file starts now rather than at the next tick.
        if (!this.stopped) void this.scan();
        // Spare FIFOs for the next pushes, made now that this one is answered.
        if (!this.stopped) void this.fifos.refillIfLow();
      }
    })();
    this.inFlight.set(name, p);
    return p;
  }
}

export interface QueueLimit { pgPath: string; queueMax?: number; walSegmentSize?: number }

/**
 * archive-push-queue-max: when pushes fail and the WAL waiting in pg_wal (ready segments x
 * segment size) reaches the limit, a file is reported archived without being stored, so that
 * PostgreSQL can recycle it instead of filling the disk and stopping. Returns the warning, or
 * undefined when the queue is below the limit (or no limit is set).
 */
export async function queueFullDrop(limit: QueueLimit, name: string, reason: string): Promise<string | undefined> {
  if (!limit.queueMax || !limit.walSegmentSize) return undefined;
  const status = await fs.promises.readdir(path.join(limit.pgPath, 'pg_wal', 'archive_status')).catch(() => [] as string[]);
  const queued = status.filter((n) => /^[0-9A-F]{24}\.ready$/.test(n)).length * limit.walSegmentSize;
  if (queued < limit.queueMax) return undefined;
  const warning = `dropped WAL file '${name}' because archive queue exceeded ${limit.queueMax} bytes (${queued} waiting) while pushes fail (${reason}): ` +
    'point-in-time recovery across this WAL is no longer possible; take a new backup once the repository is reachable';
  log.warn(warning);
  return warning;
}

/**
 * Writes a spool file whole (temp, rename), without fsync. An acknowledgement is a hint for the
 * archive_command, not the proof: it is written only after the repo-server has the file durably,
 * so after a crash it is either there (true) or lost, and then PostgreSQL asks again and the push
 * finds the identical file in the archive. Two fsyncs per segment on the archive_command's path
 * (journal commits, behind PostgreSQL's own WAL flushes) would buy nothing. Synchronous: a few
 * syscalls on the main thread, where two trips through libuv's threads wait behind a busy
 * machine's other work while archive_command polls for the file.
 */
function spoolWrite(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
