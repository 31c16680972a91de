import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '@openrds/common';

/**
 * Waking the shell of an archive_command (or restore_command) that waits for the daemon, without
 * polling: the shell makes a FIFO `<file>.<pid>.wait` in the spool, holds it open (read-write and
 * read-only), looks for its answer once more, and only then blocks reading a line from it (for
 * WAIT_MAX_S at most, should the daemon die). The daemon writes its answer first (`.ok`, `.error`,
 * the fetched file), then removes each FIFO waiting for that file and writes a line to it. A FIFO made after the daemon looked is
 * one whose shell finds the answer in its own look, made after it; one that exists but is not
 * open yet refuses the daemon's open (ENXIO), and its shell, too, looks after opening it. Before,
 * the shell slept in steps of 2-5 ms, starting `sleep` at each step: tens of processes per call on
 * a machine whose CPUs PostgreSQL needs, and up to a step's delay after the answer.
 */
export const WAIT_SUFFIX = 'wait';
/** How long a shell waits at most (the daemon that would answer may have died meanwhile), in seconds. */
export const WAIT_MAX_S = 2;
/** A FIFO older than this has lost its shell (killed while it waited): the daemon removes it. */
const WAIT_STALE_MS = 60_000;
/** A FIFO a shell made (`<file>.<pid>.wait`), as opposed to one the daemon placed (`<file>.wait`, see WaitFifos). */
const SHELL_FIFO_RE = new RegExp(`\\.\\d+\\.${WAIT_SUFFIX}$`);
/** Lines written to a FIFO the daemon placed: one for each shell that may read it (two calls at once, one by hand). */
const PLACED_LINES = '\n'.repeat(8);

/**
 * Wakes the shells waiting in `dir` for `name` (every waiter when `name` is undefined: the daemon
 * stops). Each FIFO woken is removed here, which spares its shell starting `rm`. A FIFO the daemon
 * placed (`<name>.wait`, see WaitFifos) is removed even when no shell has it open yet: a shell
 * that looked for it just before looks for its answer after opening it, and finds it.
 */
export function spoolWake(dir: string, name?: string): void {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) {
    if (!n.endsWith(`.${WAIT_SUFFIX}`)) continue;
    const placed = !SHELL_FIFO_RE.test(n);
    // The file it waits for: `<file>.<pid>.wait` or `<file>.wait` (a `<name>.partial` waiter is not `<name>`'s).
    const served = placed ? n.slice(0, -`.${WAIT_SUFFIX}`.length) : n.replace(SHELL_FIFO_RE, '');
    if (name !== undefined && served !== name) continue;
    const file = path.join(dir, n);
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch {
      // ENXIO: no shell has it open yet; one that makes its own FIFO finds the answer when it looks next.
      if (placed) fs.rmSync(file, { force: true });
      continue;
    }
    try {
      if (!fs.fstatSync(fd).isFIFO()) continue;
      // Removed first: the woken shell, quick to go on, need not start `rm` for it.
      fs.rmSync(file, { force: true });
      fs.writeSync(fd, placed ? PLACED_LINES : '\n');
    } catch {
      // The shell gave up meanwhile (EPIPE): it removes its FIFO itself.
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Removes FIFOs whose shell is gone (killed while waiting); true for a name that is one. */
export function spoolWaitStale(dir: string, n: string, now = Date.now()): boolean {
  if (!n.endsWith(`.${WAIT_SUFFIX}`)) return false;
  const file = path.join(dir, n);
  try {
    if (now - fs.lstatSync(file).mtimeMs > WAIT_STALE_MS) fs.rmSync(file, { force: true });
  } catch { /* gone already */ }
  return true;
}

/** Spare FIFOs made at once by one `mkfifo`, and how few left start the next batch. */
const SPARES_BATCH = 16;
const SPARES_LOW = 4;
/** After a batch that made none (no `mkfifo`, a spool that refuses FIFOs): this long before the next try, not one per push. */
const SPARES_RETRY_MS = 60_000;

/**
 * FIFOs the daemon places for the archive_command's shell: as a push starts, a spare FIFO is
 * renamed to `<file>.wait` in the spool, so that a shell that finds no acknowledgement yet waits
 * on it (see agentArchiveCommand) without starting `mkfifo` first. Under load each process a
 * shell starts costs a process start (~10 ms on a busy 2-core host, the bench's "sh start"), and
 * the wait used to start two: `mkfifo`, before it could begin, and the `sleep` that bounds it. The
 * spares are made in
 * batches by one `mkfifo` process off the path PostgreSQL waits on (Node cannot make a FIFO),
 * in a directory of their own; when none is left, the shell makes its own FIFO as before.
 */
export class WaitFifos {
  private readonly spareDir: string;
  private spares: string[] = [];
  private making: Promise<void> | undefined;
  private serial = 0;
  private stopped = false;
  private retryAt = 0;

  /** `mkfifo`: the program that makes them (a test names one that is missing). */
  constructor(private readonly dir: string, private readonly mkfifo = 'mkfifo') {
    this.spareDir = path.join(dir, '.wait-spares');
  }

  /** Removes what an earlier daemon left (its spares, FIFOs it placed), then makes the first spares. */
  async start(): Promise<void> {
    await fs.promises.rm(this.spareDir, { recursive: true, force: true });
    await fs.promises.mkdir(this.spareDir, { mode: 0o700 });
    for (const n of await fs.promises.readdir(this.dir).catch(() => [] as string[])) {
      // A shell blocked on one keeps it open and wakes at its timeout; later ones make their own.
      if (n.endsWith(`.${WAIT_SUFFIX}`) && !SHELL_FIFO_RE.test(n)) await fs.promises.rm(path.join(this.dir, n), { force: true });
    }
    await this.refill();
  }

  /** Removes the spares (the placed FIFOs are the wake's: spoolWake). */
  stop(): void {
    this.stopped = true;
    fs.rmSync(this.spareDir, { recursive: true, force: true });
  }

  /** Places `<name>.wait` for the shell of `name`'s archive_command; false when no spare is left. */
  place(name: string): boolean {
    const spare = this.spares.pop();
    if (!spare) return false;
    const file = path.join(this.dir, `${name}.${WAIT_SUFFIX}`);
    try {
      fs.renameSync(spare, file);
      // Fresh for the stale sweep (spoolWaitStale), which goes by the modification time.
      const now = new Date();
      fs.utimesSync(file, now, now);
      return true;
    } catch (err) {
      log.detail(`unable to place '${file}': ${(err as Error).message}`);
      return false;
    }
  }

  /** Makes the next batch of spares when few are left (call it off the path PostgreSQL waits on). */
  refillIfLow(): Promise<void> {
    return this.spares.length < SPARES_LOW ? this.refill() : Promise.resolve();
  }

  private refill(): Promise<void> {
    if (this.stopped || Date.now() < this.retryAt) return Promise.resolve();
    this.making ??= new Promise<void>((resolve) => {
      const names = Array.from({ length: SPARES_BATCH }, () => path.join(this.spareDir, String(++this.serial)));
      execFile(this.mkfifo, ['-m', '600', ...names], (err) => {
        // Those made (all of them, or none when mkfifo is missing or the spool refuses FIFOs).
        const made = names.filter((f) => { try { return fs.lstatSync(f).isFIFO(); } catch { return false; } });
        if (made.length === 0) {
          log.detail(`unable to make FIFOs in '${this.spareDir}' (the archive_command's shell makes its own): ${err?.message ?? 'none made'}`);
          this.retryAt = Date.now() + SPARES_RETRY_MS;
        }
        if (!this.stopped) this.spares.push(...made);
        this.making = undefined;
        resolve();
      });
    });
    return this.making;
  }
}
