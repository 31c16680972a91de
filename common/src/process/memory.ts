import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { log } from '../log';

/**
 * Keeps a long-lived daemon's resident memory near what it really holds.
 *
 * A backup of many small files makes the repo-server and the agent allocate and drop a message,
 * a buffer and a few records per file at a high rate. V8 lets that garbage pile up in the old
 * generation (with the buffers it holds) for as long as it has room: measured on a cluster of
 * 62,000 files, a live heap of ~55 MB sat in a 145 MB heap plus 60 MB of dead buffers, and peak
 * RSS went past 350 MB. When the process is over `softRssBytes` and its heap plus buffers grew by
 * `growthBytes` since the last collection, a full collection runs (at most every `intervalMs`);
 * measured there: repo-server peak RSS 262–309 MB instead of 328–368 MB, CPU within the noise. A
 * process under the soft limit (a daemon between jobs, a backup of big files streaming through
 * a few chunks) is never touched.
 */
export class MemoryGovernor {
  /** The governor of this process, once started (memorySettle reaches it). */
  static active: MemoryGovernor | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settling: NodeJS.Timeout | undefined;
  private lastSize = 0;
  private readonly softRssBytes: number;
  private readonly growthBytes: number;
  private readonly measure: () => { rss: number; size: number };
  /** Collections run so far (for tests and the daemon's status). */
  collections = 0;

  constructor(private readonly opts: {
    softRssBytes?: number; growthBytes?: number; intervalMs?: number;
    /** settleSoon: the growth that makes it collect, and how long after the call. */
    settleBytes?: number; settleDelayMs?: number;
    /** For tests: the figures and the collector. */
    measure?: () => { rss: number; size: number }; collect?: () => void;
  } = {}) {
    this.softRssBytes = opts.softRssBytes ?? 224 * 1024 * 1024;
    this.growthBytes = opts.growthBytes ?? 32 * 1024 * 1024;
    this.measure = opts.measure ?? measure;
  }

  start(): this {
    // Now, before worker threads exist: the flag that exposes gc also reaches their isolates.
    if (!this.opts.collect) collector();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs ?? 1000);
    this.timer.unref();
    MemoryGovernor.active = this;
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.settling) clearTimeout(this.settling);
    if (MemoryGovernor.active === this) MemoryGovernor.active = undefined;
  }

  /**
   * A piece of work ended (an admin command, a job): shortly after, when the heap and buffers
   * grew by `settleBytes` since the last collection, a full collection runs, whatever the RSS.
   * The work's records are garbage now; collected, the next operation starts from what the
   * daemon really holds instead of stacking its own peak on this one's leftovers (measured on
   * 62,000 small files: a restore right after a backup peaked 50–80 MB lower). One collection
   * for a burst of endings; true when one was scheduled.
   */
  settleSoon(): boolean {
    if (this.settling) return false;
    this.settling = setTimeout(() => {
      this.settling = undefined;
      this.collectIfGrown();
    }, this.opts.settleDelayMs ?? 300);
    this.settling.unref();
    return true;
  }

  /**
   * A phase of a piece of work ended and a heavier one follows (a backup's copy is done; its
   * manifest is built next): collect now when heap and buffers grew by `settleBytes`, so that
   * the next phase's peak does not stack on this one's garbage. True when it collected.
   */
  collectIfGrown(): boolean {
    const { size } = this.measure();
    if (size - this.lastSize < (this.opts.settleBytes ?? 8 * 1024 * 1024)) return false;
    return this.collectNow();
  }

  private collectNow(): boolean {
    const collect = this.opts.collect ?? collector();
    if (!collect) return false;
    collect();
    this.collections++;
    this.lastSize = this.measure().size;
    return true;
  }

  /** One check; true when it collected. */
  tick(): boolean {
    const { rss, size } = this.measure();
    if (rss < this.softRssBytes || size - this.lastSize < this.growthBytes) {
      // Shrinking (V8 collected by itself) lowers the mark, so growth counts from there.
      if (size < this.lastSize) this.lastSize = size;
      return false;
    }
    return this.collectNow();
  }
}

/** Tells the process's governor (if it runs one) that a piece of work ended: see MemoryGovernor.settleSoon. */
export function memorySettle(): void {
  MemoryGovernor.active?.settleSoon();
}

/** Tells the process's governor (if it runs one) that a phase of a piece of work ended: see MemoryGovernor.collectIfGrown. */
export function memoryPhaseEnd(): void {
  MemoryGovernor.active?.collectIfGrown();
}

function measure(): { rss: number; size: number } {
  const m = process.memoryUsage();
  return { rss: m.rss, size: m.heapUsed + m.arrayBuffers };
}

let gcFunction: (() => void) | null | undefined;

/** V8's full collection (`gc`, exposed on demand), or null where the runtime refuses. */
function collector(): (() => void) | null {
  if (gcFunction !== undefined) return gcFunction;
  try {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as () => void;
    if (typeof gcFunction !== 'function') gcFunction = null;
  } catch (err) {
    log.detail(`early garbage collection unavailable: ${(err as Error).message}`);
    gcFunction = null;
  }
  return gcFunction;
}
