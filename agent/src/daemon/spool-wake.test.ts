import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configLoad } from '@openrds/common/dist/config';
import { PG_COMMAND_MAX, agentArchiveCommand, agentRestoreCommand, commandLengthOf } from './self';
import { WaitFifos, spoolWaitStale, spoolWake } from './spool-wake';
import { until } from './test-until';

/**
 * The archive_command the agent prints for archive-async=y, run by /bin/sh as PostgreSQL runs it
 * (%f, %p replaced); its Node fallback (`cmd`) is `echo node`, so the output says which way it went.
 */
function archiveCommand(spool: string, name: string): { pid: number; done: Promise<{ code: number; out: string; ms: number; end: number }> } {
  const config = configLoad({ command: 'archive-command', argv: ['--config=/dev/null', '--stanza=s', '--archive-async', `--spool-path=${spool}`, '--cmd=echo node', '--log-level-console=off'], env: {} });
  const line = `${agentArchiveCommand(config, 's').replace(/%f/g, name).replace(/%p/g, `pg_wal/${name}`)}; echo end`;
  const t0 = Date.now();
  const child = spawn('/bin/sh', ['-c', line], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  return { pid: child.pid!, done: new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, out: out.trim().split('\n').map((l) => l.split(' ')[0]).join(' '), ms: Date.now() - t0, end: Date.now() }))) };
}

/** Whether the shell `pid` has looked for its answer and reads its FIFO (fd 8): a wake now is one it waited for. */
function readsFifo(pid: number | string): boolean {
  return fs.existsSync(`/proc/${pid}/fd/8`);
}

/** Whether the shell `pid` holds its FIFO open (fd 9 read-write, then fd 8 read-only while it waits): a wake reaches it. */
function holdsFifo(pid: number | string): boolean {
  return fs.existsSync(`/proc/${pid}/fd/9`) || fs.existsSync(`/proc/${pid}/fd/8`);
}

function aliveUntil(dir: string, sec: number): void {
  const file = path.join(dir, 'daemon.alive');
  fs.writeFileSync(file, String(sec));
  fs.utimesSync(file, sec, sec);
}

/**
 * Runs an archive_command or restore_command line (%f, %p replaced) with /bin/sh, the external
 * programs it may start (mkfifo, rm, cat, date, sleep, mv) found first as shims that log
 * their name to `<shims>/log` and run the real one: the test counts the processes each path costs.
 */
function shimmed(line: string, shims: string): Promise<{ code: number; out: string; started: string[] }> {
  fs.mkdirSync(shims, { recursive: true });
  for (const p of ['mkfifo', 'rm', 'cat', 'date', 'sleep', 'mv']) {
    fs.writeFileSync(path.join(shims, p), `#!/bin/sh\necho ${p} >> ${shims}/log\nexec /usr/bin/${p} "$@"\n`, { mode: 0o755 });
  }
  fs.rmSync(path.join(shims, 'log'), { force: true });
  const child = spawn('/bin/sh', ['-c', line], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PATH: `${shims}:${process.env.PATH}` } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  return new Promise((resolve) => child.on('close', (code) => {
    const log = path.join(shims, 'log');
    resolve({ code: code ?? 1, out: out.trim(), started: fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [] });
  }));
}

/** Whether a shim has logged `p` (a `sleep` killed at once may not have got that far: the test waits for it). */
function shimStarted(shims: string, p: string): boolean {
  const log = path.join(shims, 'log');
  return fs.existsSync(log) && fs.readFileSync(log, 'utf8').split('\n').includes(p);
}

describe('the shell woken by the daemon instead of polling', () => {
  let spool: string, dir: string;
  const name = '000000010000000000000007';
  const fifos = (): string[] => fs.readdirSync(dir).filter((n) => n.endsWith('.wait'));
  const shellWait = (n: string) => archiveCommand(spool, n);
  beforeEach(() => {
    spool = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-wake-'));
    dir = path.join(spool, 'archive', 's', 'out');
    fs.mkdirSync(dir, { recursive: true });
    // The daemon vouches for itself (else the shell starts Node at once): content and modification time, as AsyncPusher writes it.
    aliveUntil(dir, Math.floor(Date.now() / 1000) + 600);
  });
  afterEach(() => fs.rmSync(spool, { recursive: true, force: true }));

  it('blocks on its FIFO until the daemon writes the answer and wakes it; the daemon removes the FIFO', async () => {
    const w = shellWait(name);
    await until(() => fifos().length === 1);
    const fifo = fifos()[0]!;
    expect(fifo).toBe(`${name}.${w.pid}.wait`);
    expect(fs.lstatSync(path.join(dir, fifo)).isFIFO()).toBe(true);
    // A wake for another file leaves it waiting.
    spoolWake(dir, '000000010000000000000008');
    await new Promise((r) => setTimeout(r, 100));
    expect(fifos()).toEqual([fifo]);
    fs.writeFileSync(path.join(dir, `${name}.ok`), '');
    const woken = Date.now();
    spoolWake(dir, name);
    expect(fifos()).toEqual([]);
    const r = await w.done;
    expect(r).toMatchObject({ code: 0, out: 'end' });
    // Woken, not timed out (the wait holds 2 s at most).
    expect(r.end - woken).toBeLessThan(1500);
  });

  it('a wake for a segment leaves the waiter of its .partial alone', async () => {
    const partial = `${name}.partial`;
    const w = shellWait(partial);
    await until(() => fifos().length === 1 && holdsFifo(w.pid));
    fs.writeFileSync(path.join(dir, `${name}.ok`), '');
    spoolWake(dir, name);
    expect(fifos()).toEqual([`${partial}.${w.pid}.wait`]);
    fs.writeFileSync(path.join(dir, `${partial}.ok`), '');
    spoolWake(dir, partial);
    expect((await w.done).out).toBe('end');
  });

  it('does not wait for an answer written before it looked, and leaves no FIFO behind', async () => {
    fs.writeFileSync(path.join(dir, `${name}.ok`), '');
    const r = await shellWait(name).done;
    expect(r).toMatchObject({ code: 0, out: 'end' });
    expect(fifos()).toEqual([]);
  });

  it('gives up after its timeout when no daemon answers, and removes its FIFO itself', async () => {
    const r = await shellWait(name).done;
    expect(r).toMatchObject({ code: 0, out: 'node end' });
    expect(r.ms).toBeGreaterThanOrEqual(1900);
    expect(fifos()).toEqual([]);
  });

  it('a stopping daemon wakes every waiter', async () => {
    const a = shellWait(name), b = shellWait('000000010000000000000008');
    // Both hold their FIFO open (a FIFO made but not opened yet refuses the wake: its shell would wait it out, having no answer to find).
    await until(() => fifos().length === 2 && [a.pid, b.pid].every(holdsFifo));
    const woken = Date.now();
    spoolWake(dir);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect([ra.out, rb.out]).toEqual(['node end', 'node end']);
    expect(Math.max(ra.end, rb.end) - woken).toBeLessThan(1500);
    expect(fifos()).toEqual([]);
  });

  it('an error the daemon recorded wakes the shell, which starts Node to report it', async () => {
    const w = shellWait(name);
    await until(() => fifos().length === 1);
    fs.writeFileSync(path.join(dir, `${name}.error`), '{}');
    const woken = Date.now();
    spoolWake(dir, name);
    const r = await w.done;
    expect(r.out).toBe('node end');
    expect(r.end - woken).toBeLessThan(1500);
  });

  it('stays within what PostgreSQL keeps of archive_command and restore_command (1023 characters up to 15 and 13) for long paths', () => {
    const conf = path.join(spool, `${'c'.repeat(40)}.conf`);
    fs.writeFileSync(conf, '');
    const config = configLoad({ command: 'archive-command', argv: [`--config=${conf}`, '--stanza=main', '--archive-async',
      `--spool-path=/var/spool/${'x'.repeat(60)}`, `--cmd=/opt/${'y'.repeat(60)}/bin/openrds-agent`], env: {} });
    // Measured with the longest names PostgreSQL puts in: a backup history file's for archive_command (40
    // characters: the first backup's, which cut a line measured with a .partial name), pg_wal/RECOVERYHISTORY
    // and a segment's for restore_command.
    expect(commandLengthOf('%p %f')).toBe('pg_wal/'.length + 40 + 1 + 40);
    expect(commandLengthOf('%p %f', 'restore_command')).toBe('pg_wal/RECOVERYHISTORY'.length + 1 + 24);
    expect(commandLengthOf(agentArchiveCommand(config, 'main'))).toBeLessThanOrEqual(PG_COMMAND_MAX);
    // PostgreSQL 13 and older cut restore_command the same way.
    expect(commandLengthOf(agentRestoreCommand(config, 'main'), 'restore_command')).toBeLessThanOrEqual(PG_COMMAND_MAX);
  });

  it('a FIFO not opened yet is left to its shell (which looks after opening it); stale ones are removed', () => {
    const fifo = path.join(dir, `${name}.12345.wait`);
    const made = spawn('mkfifo', [fifo]);
    return new Promise<void>((resolve) => made.on('close', () => resolve())).then(() => {
      spoolWake(dir, name);
      expect(fs.existsSync(fifo)).toBe(true);
      expect(spoolWaitStale(dir, `${name}.12345.wait`)).toBe(true);
      expect(fs.existsSync(fifo)).toBe(true);
      expect(spoolWaitStale(dir, `${name}.12345.wait`, Date.now() + 120_000)).toBe(true);
      expect(fs.existsSync(fifo)).toBe(false);
      expect(spoolWaitStale(dir, `${name}.ok`)).toBe(false);
    });
  });
});

describe('the processes each path of the shell fronts starts (each costs milliseconds on a loaded host)', () => {
  let spool: string, out: string, inDir: string, shims: string;
  const name = '000000010000000000000007';
  const config = () => configLoad({ command: 'archive-command', argv: ['--config=/dev/null', '--stanza=s', '--archive-async', `--spool-path=${spool}`, '--cmd=echo node', '--log-level-console=off'], env: {} });
  const archiveLine = (): string => agentArchiveCommand(config(), 's').replace(/%f/g, name).replace(/%p/g, `pg_wal/${name}`);
  const restoreLine = (f: string): string => agentRestoreCommand(config(), 's').replace(/%f/g, f).replace(/%p/g, path.join(spool, 'RECOVERYXLOG'));
  const fifosIn = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.endsWith('.wait'));
  beforeEach(() => {
    spool = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-procs-'));
    out = path.join(spool, 'archive', 's', 'out');
    inDir = path.join(spool, 'archive', 's', 'in');
    shims = path.join(spool, 'shims');
    fs.mkdirSync(out, { recursive: true });
    fs.mkdirSync(inDir, { recursive: true });
  });
  afterEach(() => fs.rmSync(spool, { recursive: true, force: true }));

  it('archive_command: none when the acknowledgement is there', async () => {
    fs.writeFileSync(path.join(out, `${name}.ok`), '');
    expect(await shimmed(archiveLine(), shims)).toEqual({ code: 0, out: '', started: [] });
  });

  it('archive_command: woken by the daemon, mkfifo and the sleep that bounds the wait only (no cat, no date)', async () => {
    aliveUntil(out, Math.floor(Date.now() / 1000) + 600);
    const r = shimmed(archiveLine(), shims);
    await until(() => fifosIn(out).length === 1 && fs.readdirSync('/proc').some((p) => /^\d+$/.test(p) && fs.existsSync(path.join(out, `${name}.${p}.wait`)) && readsFifo(p)) && shimStarted(shims, 'sleep'));
    fs.writeFileSync(path.join(out, `${name}.ok`), '');
    spoolWake(out, name);
    expect(await r).toEqual({ code: 0, out: '', started: ['mkfifo', 'sleep'] });
  });

  it('archive_command: on the FIFO the daemon placed as its push started, only the sleep that bounds the wait (no mkfifo)', async () => {
    aliveUntil(out, Math.floor(Date.now() / 1000) + 600);
    const fifos = new WaitFifos(out);
    await fifos.start();
    try {
      expect(fifos.place(name)).toBe(true);
      const r = shimmed(archiveLine(), shims);
      await until(() => fs.readdirSync('/proc').some((p) => /^\d+$/.test(p) && readsFifo(p) && fs.readlinkSync(`/proc/${p}/fd/8`) === path.join(out, `${name}.wait`)) && shimStarted(shims, 'sleep'));
      fs.writeFileSync(path.join(out, `${name}.ok`), '');
      spoolWake(out, name);
      expect(await r).toEqual({ code: 0, out: '', started: ['sleep'] });
      expect(fifosIn(out)).toEqual([]);
    } finally {
      fifos.stop();
    }
  });

  it('archive_command: a daemon whose vouching has lapsed is not waited for: Node at once', async () => {
    aliveUntil(out, Math.floor(Date.now() / 1000) - 1);
    const t0 = Date.now();
    const r = await shimmed(archiveLine(), shims);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(r).toEqual({ code: 0, out: expect.stringMatching(/^node archive-push /), started: ['mkfifo', 'rm'] });
    expect(fifosIn(out)).toEqual([]);
  });

  it('archive_command: daemon.alive gone between its two looks (the daemon stopped; its wake came before the FIFO was open) is not waited for', async () => {
    // A directory stands for that moment: new enough for the first look (-nt), not a file for the second (-f).
    fs.mkdirSync(path.join(out, 'daemon.alive'));
    const sec = Math.floor(Date.now() / 1000) + 600;
    fs.utimesSync(path.join(out, 'daemon.alive'), sec, sec);
    const t0 = Date.now();
    const r = await shimmed(archiveLine(), shims);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(r).toEqual({ code: 0, out: expect.stringMatching(/^node archive-push /), started: ['mkfifo', 'rm'] });
  });

  it('restore_command: a queued segment is one mv', async () => {
    fs.writeFileSync(path.join(inDir, name), 'wal');
    expect(await shimmed(restoreLine(name), shims)).toEqual({ code: 0, out: '', started: ['mv'] });
    expect(fs.readFileSync(path.join(spool, 'RECOVERYXLOG'), 'utf8')).toBe('wal');
  });

  it('restore_command: a fresh "not in the archive" answers 1 with one date and no FIFO; a stale one asks Node', async () => {
    fs.writeFileSync(path.join(inDir, '00000002.history.missing'), `${Math.floor(Date.now() / 1000) + 3}\n`);
    expect(await shimmed(restoreLine('00000002.history'), shims)).toEqual({ code: 1, out: '', started: ['date'] });
    fs.writeFileSync(path.join(inDir, '00000002.history.missing'), `${Math.floor(Date.now() / 1000) - 1}\n`);
    expect(await shimmed(restoreLine('00000002.history'), shims)).toEqual({ code: 0, out: expect.stringMatching(/^node archive-get 00000002.history /), started: ['date'] });
    // No marker at all: Node.
    fs.rmSync(path.join(inDir, '00000002.history.missing'));
    expect(await shimmed(restoreLine('00000002.history'), shims)).toEqual({ code: 0, out: expect.stringMatching(/^node archive-get 00000002.history /), started: ['date'] });
    expect(fifosIn(inDir)).toEqual([]);
  });

  it('restore_command: a segment being fetched is waited for on a FIFO, then taken', async () => {
    fs.writeFileSync(path.join(inDir, `${name}.fetching`), '');
    const r = shimmed(restoreLine(name), shims);
    await until(() => fs.readdirSync('/proc').some((p) => /^\d+$/.test(p) && fs.existsSync(path.join(inDir, `${name}.${p}.wait`)) && readsFifo(p)) && shimStarted(shims, 'sleep'));
    fs.writeFileSync(path.join(inDir, name), 'wal');
    fs.rmSync(path.join(inDir, `${name}.fetching`));
    spoolWake(inDir, name);
    expect(await r).toEqual({ code: 0, out: '', started: ['mkfifo', 'sleep', 'mv'] });
    expect(fifosIn(inDir)).toEqual([]);
  });
});

describe('FIFOs the daemon places for the archive_command\'s shell (WaitFifos)', () => {
  let dir: string;
  const name = '000000010000000000000007';
  const fifosIn = (): string[] => fs.readdirSync(dir).filter((n) => n.endsWith('.wait')).sort();
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wait-fifos-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const mkfifo = (file: string): Promise<void> => new Promise((resolve) => spawn('mkfifo', [file]).on('close', () => resolve()));

  it('starts by removing what an earlier daemon left (its spares and the FIFOs it placed), not a shell\'s own FIFO', async () => {
    fs.mkdirSync(path.join(dir, '.wait-spares'));
    await mkfifo(path.join(dir, '.wait-spares', '99'));
    await mkfifo(path.join(dir, `${name}.wait`));
    await mkfifo(path.join(dir, `${name}.12345.wait`));
    const fifos = new WaitFifos(dir);
    await fifos.start();
    expect(fifosIn()).toEqual([`${name}.12345.wait`]);
    expect(fs.readdirSync(path.join(dir, '.wait-spares')).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 16 }, (_, i) => String(i + 1)));
    fifos.stop();
    expect(fs.existsSync(path.join(dir, '.wait-spares'))).toBe(false);
  });

  it('places a fresh FIFO under the file\'s name, and makes the next batch once few spares are left', async () => {
    const fifos = new WaitFifos(dir);
    await fifos.start();
    try {
      const old = new Date(Date.now() - 3600_000);
      for (const f of fs.readdirSync(path.join(dir, '.wait-spares'))) fs.utimesSync(path.join(dir, '.wait-spares', f), old, old);
      expect(fifos.place(name)).toBe(true);
      const placed = fs.lstatSync(path.join(dir, `${name}.wait`));
      expect(placed.isFIFO()).toBe(true);
      // Fresh for the stale sweep, whatever the spare's age.
      expect(Date.now() - placed.mtimeMs).toBeLessThan(60_000);
      expect(spoolWaitStale(dir, `${name}.wait`)).toBe(true);
      expect(fs.existsSync(path.join(dir, `${name}.wait`))).toBe(true);
      for (let i = 8; i < 8 + 15; i++) expect(fifos.place(`0000000100000000000000${i.toString(16).toUpperCase().padStart(2, '0')}`)).toBe(true);
      // 16 made, 16 placed: none left until the next batch.
      expect(fifos.place('000000010000000000000030')).toBe(false);
      await fifos.refillIfLow();
      expect(fs.readdirSync(path.join(dir, '.wait-spares'))).toHaveLength(16);
      expect(fifos.place('000000010000000000000030')).toBe(true);
    } finally {
      fifos.stop();
    }
  });

  it('without mkfifo it places none (the shell makes its own) and does not try again at every push', async () => {
    const missing = path.join(dir, 'no-such-bin', 'mkfifo');
    const fifos = new WaitFifos(dir, missing);
    await fifos.start();
    try {
      expect(fifos.place(name)).toBe(false);
      expect(fifosIn()).toEqual([]);
      // Were mkfifo there now, the next batch would still wait for its retry time (a minute), not come at the next push.
      fs.mkdirSync(path.dirname(missing));
      fs.symlinkSync('/usr/bin/mkfifo', missing);
      await fifos.refillIfLow();
      expect(fs.readdirSync(path.join(dir, '.wait-spares'))).toEqual([]);
      expect(fifos.place(name)).toBe(false);
    } finally {
      fifos.stop();
    }
  });

  it('a wake removes the placed FIFO even when no shell opened it, and leaves an unopened shell FIFO to its shell', async () => {
    const fifos = new WaitFifos(dir);
    await fifos.start();
    try {
      fifos.place(name);
      await mkfifo(path.join(dir, `${name}.12345.wait`));
      spoolWake(dir, name);
      expect(fifosIn()).toEqual([`${name}.12345.wait`]);
      // A stopping daemon removes every placed one.
      fifos.place('000000010000000000000008');
      spoolWake(dir);
      expect(fifosIn()).toEqual([`${name}.12345.wait`]);
    } finally {
      fifos.stop();
    }
  });

  it('a shell on a placed FIFO whose daemon never answers gives up after its timeout, removes it, and starts Node', async () => {
    const out = path.join(dir, 'archive', 's', 'out');
    fs.mkdirSync(out, { recursive: true });
    aliveUntil(out, Math.floor(Date.now() / 1000) + 600);
    const fifos = new WaitFifos(out);
    await fifos.start();
    try {
      fifos.place(name);
      const r = await archiveCommand(dir, name).done;
      expect(r).toMatchObject({ code: 0, out: 'node end' });
      expect(r.ms).toBeGreaterThanOrEqual(1900);
      expect(fs.readdirSync(out).filter((n) => n.endsWith('.wait'))).toEqual([]);
    } finally {
      fifos.stop();
    }
  });
});
