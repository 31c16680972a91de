import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AsyncGetter } from './async-get';
import { until } from './test-until';

const SEG = 16 * 1024 * 1024;
const seg = (n: number): string => `00000001000000000000000${n.toString(16).toUpperCase()}`;

// The archive is a fake here (a set of names): this tests the queue and its markers, not the fetch.
describe('AsyncGetter', () => {
  let dir: string;
  let getter: AsyncGetter;
  const archive = new Set<string>();
  const asked: string[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'async-get-'));
    archive.clear();
    asked.length = 0;
    getter = new AsyncGetter({
      spoolPath: dir, stanza: 's', walSegmentSize: SEG, processMax: 2, queueMax: 4 * SEG,
      get: async (name, destination) => {
        asked.push(name);
        if (!archive.has(name)) return false;
        fs.writeFileSync(destination, name);
        return true;
      },
    });
  });
  afterEach(() => {
    getter.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const inDir = (): string => path.join(dir, 'archive', 's', 'in');
  const marker = (name: string): number | undefined => {
    try { return Number(fs.readFileSync(path.join(inDir(), `${name}.missing`), 'utf8')); } catch { return undefined; }
  };

  it('primed by a restore, fetches from the start segment and marks where the archive ends and the next timeline', async () => {
    for (const n of [5, 6, 7]) archive.add(seg(n));
    const queued = (): string[] => fs.readdirSync(inDir()).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    await getter.prime(seg(5));
    // Before recovery asks, one segment per process-max (PostgreSQL's start fsyncs the data directory meanwhile).
    await until(() => queued().length === 2 && marker('00000002.history') !== undefined && marker('00000001.history') !== undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(queued()).toEqual([seg(5), seg(6)]);
    expect(asked.filter((n) => n.length === 24)).toEqual([seg(5), seg(6)]);
    // Recovery takes the first through the shell front (a rename the daemon does not see): at its
    // next look the daemon fills the queue to its depth, up to where the archive ends.
    getter.start();
    fs.renameSync(path.join(inDir(), seg(5)), path.join(dir, 'RECOVERYXLOG'));
    await until(() => marker(seg(8)) !== undefined);
    expect(queued()).toEqual([seg(6), seg(7)]);
    // The answer holds for a few seconds from now, no more.
    const now = Date.now() / 1000;
    expect(marker(seg(8))).toBeGreaterThan(now);
    expect(marker(seg(8))).toBeLessThan(now + 10);
    expect(marker('00000002.history')).toBeGreaterThan(now);
  });

  it('a recovery to the end of the archive gets its newest segment queued again once it took it (PostgreSQL asks for it again as it promotes); not a standby', async () => {
    for (const n of [5, 6]) archive.add(seg(n));
    const queued = (): string[] => fs.readdirSync(inDir()).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    getter.start();
    await getter.prime(seg(5), { toEnd: true });
    await until(() => queued().length === 2);
    fs.renameSync(path.join(inDir(), seg(5)), path.join(dir, 'RECOVERYXLOG'));
    await until(() => marker(seg(7)) !== undefined);
    expect(queued()).toEqual([seg(6)]);
    // The shell takes the last one; the archive has nothing after it: it is fetched once more.
    fs.renameSync(path.join(inDir(), seg(6)), path.join(dir, 'RECOVERYXLOG'));
    await until(() => queued().includes(seg(6)));
    expect(asked.filter((n) => n === seg(6))).toHaveLength(2);
    // Once only.
    fs.renameSync(path.join(inDir(), seg(6)), path.join(dir, 'RECOVERYXLOG'));
    await new Promise((r) => setTimeout(r, 600));
    expect(asked.filter((n) => n === seg(6))).toHaveLength(2);
    // A standby (or a recovery with a target) does not.
    await getter.prime(seg(5), { toEnd: false });
    await until(() => queued().length === 2);
    fs.renameSync(path.join(inDir(), seg(5)), path.join(dir, 'RECOVERYXLOG'));
    await new Promise((r) => setTimeout(r, 300));
    fs.renameSync(path.join(inDir(), seg(6)), path.join(dir, 'RECOVERYXLOG'));
    await new Promise((r) => setTimeout(r, 600));
    expect(queued()).toEqual([]);
    expect(asked.filter((n) => n === seg(6))).toHaveLength(3);
  });

  it('a new restore drops what an earlier recovery left queued (it may be another cluster\'s WAL of the same name)', async () => {
    fs.mkdirSync(inDir(), { recursive: true });
    fs.writeFileSync(path.join(inDir(), seg(9)), 'stale');
    fs.writeFileSync(path.join(inDir(), `${seg(9)}.missing`), '9999999999\n');
    archive.add(seg(9));
    await getter.prime(seg(9));
    await until(() => fs.existsSync(path.join(inDir(), seg(9))) && fs.readFileSync(path.join(inDir(), seg(9)), 'utf8') === seg(9));
    expect(asked).toContain(seg(9));
    expect(marker(seg(9))).toBeUndefined();
  });

  it('clears a marker once the file is in the archive, and a get of a missing file marks it', async () => {
    archive.add(seg(5));
    getter.start();
    await getter.prime(seg(5));
    await until(() => marker(seg(6)) !== undefined);
    archive.add(seg(6));
    // The prefetch asks again a little later, finds it, and the marker goes.
    await until(() => marker(seg(6)) === undefined && fs.existsSync(path.join(inDir(), seg(6))), 8000);
    expect(await getter.get('00000003.history', path.join(dir, 'x'))).toBe(false);
    expect(marker('00000003.history')).toBeGreaterThan(Date.now() / 1000);
  });

  it('queues the history file of the timeline when the archive has it, again after the shell took it; a new recovery and a new daemon drop queued ones', async () => {
    const tli2 = (n: number): string => `00000002000000000000000${n}`;
    for (const n of ['00000002.history', tli2(5)]) archive.add(n);
    const history = path.join(inDir(), '00000002.history');
    const content = (): string | undefined => { try { return fs.readFileSync(history, 'utf8'); } catch { return undefined; } };
    // One an earlier recovery queued is not trusted by the next (prime) ...
    fs.mkdirSync(inDir(), { recursive: true });
    fs.writeFileSync(history, 'stale');
    await getter.prime(tli2(5));
    expect(content()).not.toBe('stale');
    getter.start();
    await until(() => content() === '00000002.history' && marker('00000003.history') !== undefined);
    expect(fs.existsSync(`${history}.fetch`)).toBe(false);
    // The shell front takes it (a rename); it is queued again at the next look.
    fs.renameSync(history, path.join(dir, 'RECOVERYHISTORY'));
    await until(() => content() === '00000002.history', 8000);
    // ... nor by a new daemon.
    getter.stop();
    fs.writeFileSync(history, 'stale');
    getter = new AsyncGetter({ spoolPath: dir, stanza: 's', walSegmentSize: SEG, processMax: 1, queueMax: SEG, get: async () => false });
    getter.start();
    expect(content()).toBeUndefined();
  });

  it('marks a segment while it is being fetched, until the file is in place, and drops stale marks at start', async () => {
    fs.mkdirSync(inDir(), { recursive: true });
    fs.writeFileSync(path.join(inDir(), `${seg(9)}.fetching`), '');
    let release: () => void = () => {};
    const seen: boolean[] = [];
    getter = new AsyncGetter({
      spoolPath: dir, stanza: 's', walSegmentSize: SEG, processMax: 1, queueMax: SEG,
      get: async (name, destination) => {
        if (name !== seg(5)) return false;
        seen.push(fs.existsSync(path.join(inDir(), `${name}.fetching`)));
        await new Promise<void>((r) => { release = r; });
        fs.writeFileSync(destination, name);
        return true;
      },
    });
    getter.start();
    expect(fs.existsSync(path.join(inDir(), `${seg(9)}.fetching`))).toBe(false);
    await getter.prime(seg(5));
    await until(() => seen.length === 1);
    expect(seen).toEqual([true]);
    release();
    await until(() => fs.existsSync(path.join(inDir(), seg(5))) && !fs.existsSync(path.join(inDir(), `${seg(5)}.fetching`)));
  });

  it('a stopping daemon drops its markers of segments being fetched (a shell that looks after the stop starts Node at once), and none comes back', async () => {
    let release: () => void = () => {};
    const started: string[] = [];
    getter = new AsyncGetter({
      spoolPath: dir, stanza: 's', walSegmentSize: SEG, processMax: 1, queueMax: 4 * SEG,
      get: async (name, destination) => {
        started.push(name);
        await new Promise<void>((r) => { release = r; });
        fs.writeFileSync(destination, name);
        return true;
      },
    });
    getter.start();
    await getter.prime(seg(5));
    await until(() => fs.existsSync(path.join(inDir(), `${seg(5)}.fetching`)));
    getter.stop();
    expect(fs.readdirSync(inDir()).filter((n) => n.endsWith('.fetching'))).toEqual([]);
    // The fetch under way ends; no marker comes back.
    release();
    await until(() => fs.existsSync(path.join(inDir(), seg(5))));
    await new Promise((r) => setTimeout(r, 300));
    expect(started.filter((n) => n.length === 24)).toEqual([seg(5)]);
    expect(fs.readdirSync(inDir()).filter((n) => n.endsWith('.fetching'))).toEqual([]);
  });
});
