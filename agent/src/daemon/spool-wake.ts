import * as fs from 'node:fs';
import * as path from 'node:path';

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
const WAITER_RE = new RegExp(`^\\d+\\.${WAIT_SUFFIX}$`);

/**
 * Wakes the shells waiting in `dir` for `name` (every waiter when `name` is undefined: the daemon
 * stops). Each FIFO woken is removed here, which spares its shell starting `rm`.
 */
export function spoolWake(dir: string, name?: string): void {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) {
    // `<name>.<pid>.wait` (a `<name>.partial` waiter is not this file's).
    if (!n.endsWith(`.${WAIT_SUFFIX}`) || (name !== undefined && !(n.startsWith(`${name}.`) && WAITER_RE.test(n.slice(name.length + 1))))) continue;
    const file = path.join(dir, n);
    let fd: number;
    // ENXIO: its shell has not opened it yet, and will find the answer when it looks next.
    try { fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK); } catch { continue; }
    try {
      if (!fs.fstatSync(fd).isFIFO()) continue;
      // Removed first: the woken shell, quick to go on, need not start `rm` for it.
      fs.rmSync(file, { force: true });
      fs.writeSync(fd, '\n');
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
