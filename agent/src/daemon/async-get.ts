import * as fs from 'node:fs';
import * as path from 'node:path';
import { WAL_SEGMENT_RE, log, walFileKind, walSegmentNext } from '@openrds/common';
import { spoolWaitStale, spoolWake } from './spool-wake';

/**
 * Asynchronous archive-get (`archive-async=y`): when recovery asks for a WAL segment, the daemon
 * fetches the segments after it ahead, in parallel (`process-max`), into
 * `<spool-path>/archive/<stanza>/in/` — decompressed and checked by the same code as a direct get,
 * written durably. The queue holds at most `archive-get-queue-max` bytes of segments; a request
 * for a queued segment is a rename (or a copy across filesystems), so each restore_command call
 * costs O(1) however long the queue is. A segment the archive does not have yet stops the
 * prefetch for a moment (a standby may be ahead of the archive) without failing anything.
 *
 * "Not in the archive" is answered without Node too: for the segment where the archive ends, and
 * for the history files of the current timeline and the next (which recovery asks for at its
 * start and its end),
 * the daemon keeps `<name>.missing` holding the second until which that answer holds (a few
 * seconds, renewed while the daemon runs and the file stays missing), and restore_command's shell
 * front exits 1 while it is fresh. A file that appears is found within those seconds. Those
 * history files, when the archive has them, are kept in the queue (fetched again every few
 * seconds while recovery runs, as the shell takes them): a recovery on timeline 2 or later takes
 * its own history file without starting Node.
 */
export class AsyncGetter {
  readonly inDir: string;
  private next: string | undefined;
  private readonly fetching = new Map<string, Promise<boolean>>();
  private notFoundUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Set by stop(): no fetch starts (so no marker is written). */
  private stopped = false;
  /** The timeline recovery is on (from the last segment asked for): its successor's history file is watched. */
  private timeline: string | undefined;
  private historyCheck: Promise<void> | undefined;
  private historyCheckedAt = 0;
  /**
   * Primed by a restore, recovery not started yet: the segment recovery starts with. Meanwhile
   * only `processMax` segments are fetched ahead (see prime). Once that segment has been fetched
   * and has left the queue (the shell front took it), or recovery asks Node for one, the queue
   * fills to its depth.
   */
  private primedFrom: string | undefined;
  /**
   * The recovery primed replays to the end of the archive and promotes: at the end PostgreSQL asks
   * again for the last segment, which the shell front has moved away; the daemon fetches it into
   * the queue once more (see endAgain), so that the shell serves it instead of starting Node.
   */
  private toEnd = false;
  /** The newest segment fetched, the last segment the prefetch found missing (where the archive ends), and the last one fetched again for that. */
  private newest: string | undefined;
  private missingAt: string | undefined;
  private againDone: string | undefined;

  constructor(private readonly opts: {
    spoolPath: string; stanza: string; walSegmentSize: number; processMax: number; queueMax: number;
    get: (walName: string, destination: string) => Promise<boolean>;
  }) {
    this.inDir = path.join(opts.spoolPath, 'archive', opts.stanza, 'in');
  }

  /** Refills the queue as a shell restore_command (test -f ... && mv ...) consumes it. */
  start(): void {
    this.stopped = false;
    // Nothing is being fetched yet: markers a previous daemon left behind go, and so do the history
    // files it queued (of a stanza made again since, they would be another cluster's).
    this.fetchingMarkersDrop();
    for (const n of fsNames(this.inDir)) if (walFileKind(n) === 'history') fs.rmSync(path.join(this.inDir, n), { force: true });
    this.timer = setInterval(() => this.fill(), 200);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    // No fetch will finish for a shell to wait on: the markers go before the wake, so that a shell
    // which opens its FIFO after the wake starts Node at once instead of waiting out its 2 s.
    this.fetchingMarkersDrop();
    spoolWake(this.inDir);
  }

  private fetchingMarkersDrop(): void {
    for (const n of fsNames(this.inDir)) if (n.endsWith(`.${FETCHING_SUFFIX}`)) fs.rmSync(path.join(this.inDir, n), { force: true });
  }

  private get depth(): number {
    const depth = Math.max(1, Math.floor(this.opts.queueMax / this.opts.walSegmentSize));
    return this.primedFrom !== undefined ? Math.min(depth, Math.max(1, this.opts.processMax)) : depth;
  }

  async get(walName: string, destination: string): Promise<boolean> {
    await fs.promises.mkdir(this.inDir, { recursive: true, mode: 0o700 });
    if (walFileKind(walName) !== 'segment') {
      const found = await this.opts.get(walName, destination);
      await this.missingMark(walName, !found);
      return found;
    }
    this.timeline = walName.slice(0, 8);
    this.primedFrom = undefined;
    await this.position(walName);
    const queued = path.join(this.inDir, walName);
    const running = this.fetching.get(walName);
    const found = running ? await running.catch(() => false) : fs.existsSync(queued);
    let served = false;
    if (found && fs.existsSync(queued)) {
      await moveDurable(queued, destination);
      served = true;
    }
    const result = served ? true : await this.opts.get(walName, destination);
    if (!served) await this.missingMark(walName, !result);
    this.fill();
    return result;
  }

  /**
   * A restore has just been written whose recovery starts at `walName`: the first segments from
   * there (one per `process-max`) and the next timeline's history answer are fetched ahead before
   * PostgreSQL asks. No more until recovery asks for a segment: PostgreSQL's start fsyncs the whole
   * data directory first, and a full queue written and fsynced meanwhile slowed that start from
   * ~0.1 to ~0.6 s in the WAL bench's replay.
   */
  async prime(walName: string, opts: { toEnd?: boolean } = {}): Promise<void> {
    await fs.promises.mkdir(this.inDir, { recursive: true, mode: 0o700 });
    this.timeline = walName.slice(0, 8);
    // Its history files are looked up at once: PostgreSQL asks for them first, as it starts.
    this.historyCheckedAt = 0;
    this.primedFrom = walName;
    this.toEnd = opts.toEnd === true;
    this.newest = undefined;
    this.missingAt = undefined;
    this.againDone = undefined;
    // A new recovery: nothing an earlier one left queued is trusted to be of this cluster's archive
    // (a stanza upgraded since holds other WAL under the same names; a stanza made again, other
    // history files).
    for (const n of fsNames(this.inDir)) {
      const seg = n.replace(/\.missing$/, '');
      if ((WAL_SEGMENT_RE.test(seg) && !this.fetching.has(seg)) || walFileKind(n) === 'history') await fs.promises.rm(path.join(this.inDir, n), { force: true });
    }
    await this.position(walName);
    this.next = walName;
    this.notFoundUntil = 0;
    this.fill();
  }

  /**
   * Records (or clears) that `name` is not in the archive: `<name>.missing` holds the unix second
   * until which restore_command's shell front may answer "not found" by itself.
   */
  private async missingMark(name: string, missing: boolean): Promise<void> {
    const marker = path.join(this.inDir, `${name}.missing`);
    if (!missing) {
      await fs.promises.rm(marker, { force: true });
      return;
    }
    const tmp = `${marker}.tmp`;
    await fs.promises.writeFile(tmp, `${Math.floor(Date.now() / 1000) + MISSING_HOLD_S}\n`, { mode: 0o600 });
    await fs.promises.rename(tmp, marker);
  }

  /**
   * Keeps the answers for the history files of the timeline recovery is on and of the next one
   * fresh (one archive lookup each every few seconds): recovery asks for the next one at its start
   * and end, and for its own when it switches timeline at the end.
   */
  private historyWatch(): void {
    if (this.timeline === undefined || this.historyCheck || Date.now() - this.historyCheckedAt < (MISSING_HOLD_S * 1000) / 2) return;
    const tli = parseInt(this.timeline, 16);
    const names = [tli, tli + 1].map((t) => `${t.toString(16).toUpperCase().padStart(8, '0')}.history`);
    this.historyCheckedAt = Date.now();
    this.historyCheck = Promise.all(names.map((name) => {
      const tmp = path.join(this.inDir, `${name}.fetch`);
      return this.opts.get(name, tmp).then(async (found) => {
        // One that exists is queued for the shell front (its content never changes once archived;
        // a copy the shell took is replaced at the next look while recovery runs).
        if (found && !this.stopped) await fs.promises.rename(tmp, path.join(this.inDir, name));
        else await fs.promises.rm(tmp, { force: true });
        await this.missingMark(name, !found);
      }).catch(async (err: Error) => {
        await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
        log.debug(`check of '${name}' failed: ${err.message}`);
      });
    })).then(() => undefined).finally(() => { this.historyCheck = undefined; });
  }

  /** Recovery moved to `walName`: the prefetch goes on from the segment after it; older queued files go. */
  private async position(walName: string): Promise<void> {
    const after = walSegmentNext(walName, this.opts.walSegmentSize);
    const names = await fs.promises.readdir(this.inDir).catch(() => [] as string[]);
    for (const n of names) {
      // Queued files (and "missing" answers) before the request, or of another timeline, will not be asked for.
      if (spoolWaitStale(this.inDir, n)) continue;
      const seg = /^([0-9A-F]{24})(\.missing|\.fetching)?$/.exec(n)?.[1];
      if (seg && (seg < walName || seg.slice(0, 8) !== walName.slice(0, 8))) await fs.promises.rm(path.join(this.inDir, n), { force: true });
    }
    if (this.next === undefined || this.next.slice(0, 8) !== walName.slice(0, 8) || this.next <= walName
      || this.next > walSegmentAhead(walName, this.opts.walSegmentSize, this.depth + 1)) {
      this.next = after;
    }
  }

  /** Starts fetches until the queue (files and fetches) holds `depth` segments. */
  private fill(): void {
    if (this.stopped) return;
    this.historyWatch();
    // Recovery took the segment it starts with: it runs, the queue may fill.
    const primed = this.primedFrom;
    if (primed !== undefined && this.newest !== undefined && this.newest >= primed && !fs.existsSync(path.join(this.inDir, primed))) this.primedFrom = undefined;
    this.endAgain();
    if (this.next === undefined || Date.now() < this.notFoundUntil) return;
    let queued = 0;
    try { queued = fs.readdirSync(this.inDir).filter((n) => WAL_SEGMENT_RE.test(n)).length; } catch { /* made on the next get */ }
    while (queued + this.fetching.size < this.depth && this.fetching.size < Math.max(1, this.opts.processMax)) {
      const name = this.next;
      this.next = walSegmentNext(name, this.opts.walSegmentSize);
      if (fs.existsSync(path.join(this.inDir, name))) continue;
      this.fetchStart(name);
    }
  }

  /** Starts the fetch of `name` into the queue, with its `.fetching` marker while it runs. */
  private fetchStart(name: string): void {
    // restore_command's shell front waits for a segment with this marker instead of starting Node.
    const marker = path.join(this.inDir, `${name}.${FETCHING_SUFFIX}`);
    try { fs.writeFileSync(marker, ''); } catch { /* the shell then starts Node, which joins the fetch */ }
    const p = this.opts.get(name, path.join(this.inDir, name)).then((found) => {
      if (!found) {
        // Not archived yet: ask again from this segment a little later; until then recovery
        // hears "not found" from the shell front.
        this.notFoundUntil = Date.now() + 2000;
        this.missingAt = name;
        if (this.next === undefined || this.next > name) this.next = name;
      } else {
        log.detail(`fetched WAL file '${name}' ahead of recovery`);
        if (this.newest === undefined || name > this.newest) this.newest = name;
        if (name === this.missingAt) this.missingAt = undefined;
      }
      return this.missingMark(name, !found).then(() => found, () => found);
    }, (err: Error) => {
      log.warn(`prefetch of WAL file '${name}' failed: ${err.message}`);
      this.notFoundUntil = Date.now() + 2000;
      if (this.next === undefined || this.next > name) this.next = name;
      return false;
    }).finally(() => {
      // After the file (or its "missing" answer) is in place.
      fs.rmSync(marker, { force: true });
      // A restore_command waiting for it takes it now (or starts Node, which says why not).
      spoolWake(this.inDir, name);
      this.fetching.delete(name);
      this.fill();
    });
    this.fetching.set(name, p);
  }

  /**
   * A recovery to the end of the archive (see toEnd) has taken the newest segment, and the archive
   * has none after it: that segment is fetched into the queue once more, because PostgreSQL asks
   * for it again when it ends recovery (to start its new timeline from it).
   */
  private endAgain(): void {
    const last = this.newest;
    if (!this.toEnd || last === undefined || this.missingAt === undefined || walSegmentNext(last, this.opts.walSegmentSize) !== this.missingAt) return;
    if (this.againDone === last || this.fetching.has(last)) return;
    if (fs.existsSync(path.join(this.inDir, last))) return;
    this.againDone = last;
    log.detail(`fetching WAL file '${last}' again: recovery reached the end of the archive and will ask for it once more`);
    this.fetchStart(last);
  }
}

/** `<segment>.fetching` in the queue: the daemon is fetching that segment. */
export const FETCHING_SUFFIX = 'fetching';

function fsNames(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}

/** Seconds a "not in the archive" answer holds (renewed every ~2 s while the daemon runs). */
const MISSING_HOLD_S = 3;

function walSegmentAhead(name: string, segSize: number, n: number): string {
  let s = name;
  for (let i = 0; i < n; i++) s = walSegmentNext(s, segSize);
  return s;
}

/** Moves a queued file to PostgreSQL's destination: a rename, or a durable copy across filesystems. */
async function moveDurable(from: string, to: string): Promise<void> {
  try {
    await fs.promises.rename(from, to);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
  }
  const tmp = `${to}.openrds.tmp`;
  await fs.promises.copyFile(from, tmp);
  const fh = await fs.promises.open(tmp, 'r+');
  try { await fh.sync(); } finally { await fh.close(); }
  await fs.promises.rename(tmp, to);
  await fs.promises.rm(from, { force: true });
}
