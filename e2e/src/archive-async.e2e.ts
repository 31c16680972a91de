// Asynchronous archiving: the agent daemon pushes ready WAL ahead of PostgreSQL and acknowledges
// it in the spool; archive_command finds the acknowledgement with a shell test, without Node.
// Nothing is lost while the repo-server is down: failures are recorded and retried.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { osUser, runCommand } from './harness/processes';
import { Stack, installedBin } from './stack';

jest.setTimeout(600_000);

describe('asynchronous archive-push', () => {
  let stack: Stack;
  let spool: string;
  /** The archive_command the agent printed (quoted for ALTER SYSTEM). */
  let archiveCommand: string;

  beforeAll(async () => {
    stack = await Stack.create({ version: 15, stanza: 'asy', globalOptions: { 'archive-async': 'y', 'archive-push-stream': 'y', 'process-max': '2' } });
    const pg = osUser('postgres');
    spool = path.join(stack.dir, 'run', 'spool');
    fs.mkdirSync(spool, { mode: 0o700 });
    fs.chownSync(spool, pg.uid, pg.gid);
    fs.writeFileSync(stack.conf, fs.readFileSync(stack.conf, 'utf8').replace('[global]\n', `[global]\nspool-path=${spool}\n`));
    await stack.start();
    // The agent prints the archive_command to use: with archive-async=y a shell that waits for the
    // daemon's acknowledgement while the daemon is alive, and starts Node only when it must.
    const printed = await runCommand(installedBin('openrds-agent'), ['archive-command', `--stanza=${stack.stanza}`, `--config=${stack.conf}`], {});
    expect(printed.code).toBe(0);
    const line = /^archive_command = ('.*')$/m.exec(printed.stdout)?.[1];
    expect(line).toMatch(new RegExp(`^'openrds_f=${path.join(spool, 'archive', stack.stanza, 'out')}/%f; \\[ -f \\$openrds_f\\.ok \\] \\|\\| \\{`));
    expect(line).toContain('daemon.alive');
    // Woken by the daemon through a FIFO rather than polling; short enough for PostgreSQL 15 (1023 characters).
    expect(line).toContain('mkfifo');
    expect(printed.stderr).not.toContain('characters long');
    expect(printed.stdout).toMatch(/^restore_command = '.*archive-get %f "%p"/m);
    archiveCommand = line!;
    await stack.cluster.query(`ALTER SYSTEM SET archive_command = ${archiveCommand}`);
    await stack.cluster.query('SELECT pg_reload_conf()');
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
  });
  afterAll(async () => { await stack?.destroy(); });

  const readyCount = (): number => fs.readdirSync(path.join(stack.cluster.dataDir, 'pg_wal', 'archive_status')).filter((n) => n.endsWith('.ready')).length;
  async function drained(timeoutMs = 120_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (readyCount() > 0) {
      if (Date.now() > until) throw new Error(`${readyCount()} WAL file(s) still waiting for archive_command`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const verifyArchive = async () => JSON.parse((await stack.admin(['verify', `--stanza=${stack.stanza}`, '--output=json'])).stdout).archive[0];

  /**
   * Of the segments named, those still in pg_wal: each archived under its own sha256 (and no
   * temp file left of a finished segment). Their count.
   */
  function archivedSameAsPgWal(names: string[]): number {
    const archived = new Map<string, string>();
    const temps: string[] = [];
    const walRoot = path.join(stack.dir, 'repo', 'archive', stack.stanza);
    for (const id of fs.readdirSync(walRoot).filter((n) => /^\d+-\d+$/.test(n))) {
      for (const d of fs.readdirSync(path.join(walRoot, id)).filter((n) => /^[0-9A-F]{16}$/.test(n))) {
        for (const f of fs.readdirSync(path.join(walRoot, id, d))) {
          const m = /^([0-9A-F]{24})-([0-9a-f]{64})\.zst$/.exec(f);
          if (m) archived.set(m[1]!, m[2]!);
          if (f.includes('.tmp.')) temps.push(f);
        }
      }
    }
    // Nothing staged is left behind as a temp file: a stage may exist only of a segment after the
    // archived ones (the one PostgreSQL writes now, autovacuum's WAL after the load, say).
    const newest = [...archived.keys()].sort().pop() ?? '';
    expect(temps.filter((f) => f.slice(0, 24) <= newest)).toEqual([]);
    let compared = 0;
    for (const name of names) {
      const file = path.join(stack.cluster.dataDir, 'pg_wal', name);
      if (!fs.existsSync(file)) continue;
      expect(archived.get(name)).toBe(crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
      compared++;
    }
    return compared;
  }

  it('pushes ahead of PostgreSQL and archive_command only finds the acknowledgement', async () => {
    await stack.cluster.pgbench(['-i', '-s', '8', '-q']);
    for (let i = 0; i < 4; i++) {
      await stack.cluster.query(`CREATE TABLE w${i} AS SELECT g FROM generate_series(1, 50000) g`);
      await stack.cluster.query('SELECT pg_switch_wal()');
    }
    await drained();
    const agentLog = stack.agent!.logText();
    const ahead = agentLog.split('\n').filter((l) => l.includes('pushed WAL file') && l.includes('ahead of PostgreSQL'));
    expect(ahead.length).toBeGreaterThanOrEqual(5);
    const archive = await verifyArchive();
    expect(archive.bad).toEqual([]);
    expect(archive.gaps).toEqual([]);
    expect(archive.files).toBeGreaterThanOrEqual(ahead.length);
    // The daemon vouches for itself a few seconds ahead (the shell waits for .ok files only then).
    // As content, and as modification time (which the shell compares with its FIFO's, starting no `date`).
    const aliveFile = path.join(spool, 'archive', stack.stanza, 'out', 'daemon.alive');
    const alive = Number(fs.readFileSync(aliveFile, 'utf8'));
    expect(alive).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
    expect(Math.floor(fs.statSync(aliveFile).mtimeMs / 1000)).toBe(alive);
    // Acknowledgements PostgreSQL has used are cleaned up.
    await new Promise((r) => setTimeout(r, 1500));
    const out = path.join(spool, 'archive', stack.stanza, 'out');
    expect(fs.readdirSync(out).filter((n) => n.endsWith('.ok'))).toEqual([]);
    // Each push placed a FIFO for its archive_command's shell, and its wake removed it; spares wait for the next pushes.
    expect(fs.readdirSync(out).filter((n) => n.endsWith('.wait'))).toEqual([]);
    const spares = fs.readdirSync(path.join(out, '.wait-spares'));
    expect(spares.length).toBeGreaterThan(0);
    expect(spares.every((n) => fs.lstatSync(path.join(out, '.wait-spares', n)).isFIFO())).toBe(true);
    // The pushes took spares: the first batch (1 to 16) is not whole, or a later one was made.
    expect(spares.length < 16 || Math.max(...spares.map(Number)) > 16).toBe(true);
  });

  it('streams segments ahead while PostgreSQL writes them (archive-push-stream): each archived segment is the one in pg_wal', async () => {
    // A steady load that fills segments over a few seconds each, so finished pages go ahead.
    const logFrom = stack.agent!.logText().length;
    await stack.cluster.query('CHECKPOINT');
    await stack.cluster.pgbench(['-n', '-c', '2', '-T', '12']);
    await stack.cluster.query('SELECT pg_switch_wal()');
    await drained();
    const staged = stack.agent!.logText().slice(logFrom).split('\n').filter((l) => l.includes('bytes staged ahead'));
    expect(staged.length).toBeGreaterThanOrEqual(1);
    // Staged up to PostgreSQL's flush position (the agent reaches the primary): the push read only the rest, nothing to compare.
    expect(staged.filter((l) => l.includes(' read+compress ')).length).toBeGreaterThanOrEqual(1);
    // The stored name carries the sha256 of what the repo-server checked; the segments of the load
    // are still in pg_wal (no checkpoint recycled them): the same bytes, staged or not.
    const compared = archivedSameAsPgWal(staged.map((l) => /archive-push '([0-9A-F]{24})'/.exec(l)![1]!));
    expect(compared).toBeGreaterThanOrEqual(1);
    const archive = await verifyArchive();
    expect(archive.bad).toEqual([]);
    expect(archive.gaps).toEqual([]);
  });

  it('a repo-server restart while a segment is staged: it is staged again or pushed whole, and stored as PostgreSQL wrote it', async () => {
    const logFrom = stack.agent!.logText().length;
    await stack.cluster.query('CHECKPOINT');
    const load = stack.cluster.pgbench(['-n', '-c', '2', '-T', '10']);
    // Mid-load: the stage of the segment being written is lost with the repo-server.
    await new Promise((r) => setTimeout(r, 4000));
    await stack.server!.stop('SIGTERM');
    await stack.startServer();
    await load;
    await stack.cluster.query('SELECT pg_switch_wal()');
    await drained();
    const pushed = stack.agent!.logText().slice(logFrom).split('\n')
      .map((l) => /pushed WAL file '([0-9A-F]{24})' ahead/.exec(l)?.[1]).filter((n): n is string => !!n);
    expect(pushed.length).toBeGreaterThanOrEqual(2);
    expect(archivedSameAsPgWal(pushed)).toBeGreaterThanOrEqual(2);
    const archive = await verifyArchive();
    expect(archive.bad).toEqual([]);
    expect(archive.gaps).toEqual([]);
  });

  it('records failures while the repo-server is down, PostgreSQL keeps its WAL, and nothing is lost after', async () => {
    await stack.server!.stop('SIGTERM');
    for (let i = 0; i < 3; i++) {
      await stack.cluster.query(`CREATE TABLE d${i} AS SELECT g FROM generate_series(1, 50000) g`);
      await stack.cluster.query('SELECT pg_switch_wal()');
    }
    const out = path.join(spool, 'archive', stack.stanza, 'out');
    const until = Date.now() + 30_000;
    while (!fs.readdirSync(out).some((n) => n.endsWith('.error'))) {
      if (Date.now() > until) throw new Error('no failure was recorded in the spool');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(readyCount()).toBeGreaterThanOrEqual(3);
    await stack.startServer();
    await drained();
    const archive = await verifyArchive();
    expect(archive.gaps).toEqual([]);
    expect(archive.bad).toEqual([]);
    expect(fs.readdirSync(out).filter((n) => n.endsWith('.error'))).toEqual([]);
  });

  it('an agent killed mid-push leaves no acknowledgement without its segment in the archive; a new daemon finishes the backlog', async () => {
    const out = path.join(spool, 'archive', stack.stanza, 'out');
    const archived = (): Set<string> => new Set((fs.readdirSync(path.join(stack.dir, 'repo', 'archive', stack.stanza, '15-1'), { recursive: true }) as string[])
      .map((n) => path.basename(n).slice(0, 24)));
    // Several segments at once, and the daemon killed while it pushes them. PostgreSQL's own
    // archive_command fails meanwhile, so the acknowledgements stay (it would otherwise consume
    // each one within milliseconds, and the daemon clean it up, before the test could see it).
    await stack.cluster.query(`ALTER SYSTEM SET archive_command = 'false'`);
    await stack.cluster.query('SELECT pg_reload_conf()');
    await stack.cluster.query('CREATE TABLE k AS SELECT g, md5(g::text) AS h FROM generate_series(1, 800000) g');
    await stack.cluster.query('SELECT pg_switch_wal()');
    const until = Date.now() + 30_000;
    while (!fs.readdirSync(out).some((n) => /^[0-9A-F]{24}\.ok$/.test(n)) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    await stack.agent!.stop('SIGKILL');
    const acked = fs.readdirSync(out).filter((n) => n.endsWith('.ok')).map((n) => n.slice(0, -'.ok'.length)).filter((n) => /^[0-9A-F]{24}$/.test(n));
    expect(acked.length).toBeGreaterThanOrEqual(1);
    // Killed mid-way: some segments were still waiting (or being pushed).
    expect(readyCount()).toBeGreaterThan(acked.length);
    const have = archived();
    for (const name of acked) expect({ name, archived: have.has(name) }).toEqual({ name, archived: true });
    await stack.cluster.query(`ALTER SYSTEM SET archive_command = ${archiveCommand}`);
    await stack.cluster.query('SELECT pg_reload_conf()');
    await stack.startAgent();
    await drained();
    const archive = await verifyArchive();
    expect(archive.gaps).toEqual([]);
    expect(archive.bad).toEqual([]);
  });

  it('info shows the backlog on the database host while pushes are refused (stanza stopped)', async () => {
    await stack.adminOk(['stop', `--stanza=${stack.stanza}`]);
    try {
      for (let i = 0; i < 2; i++) {
        await stack.cluster.query(`CREATE TABLE s${i} AS SELECT g FROM generate_series(1, 50000) g`);
        await stack.cluster.query('SELECT pg_switch_wal()');
      }
      // The agent reports its backlog every few seconds.
      const until = Date.now() + 30_000;
      let spoolInfo: { ready: number; failing: number; oldest: string | null } | undefined;
      for (;;) {
        spoolInfo = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']))[0]['archive-async'];
        if (spoolInfo && spoolInfo.ready >= 2 && spoolInfo.failing >= 1) break;
        if (Date.now() > until) throw new Error(`no backlog reported: ${JSON.stringify(spoolInfo)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(spoolInfo.oldest).toMatch(/^[0-9A-F]{24}$/);
      expect(await stack.adminOk(['info', `--stanza=${stack.stanza}`])).toMatch(/archive-async: \d+ WAL file\(s\) waiting on the database host \(\d+\.\d+MB\), oldest [0-9A-F]{24}, \d+ failing/);
    } finally {
      await stack.adminOk(['start', `--stanza=${stack.stanza}`]);
    }
    await drained();
  });

  it('fetches WAL ahead of recovery, and a restore_command served from the queue recovers all of it', async () => {
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    await stack.cluster.query('CREATE TABLE marker (i int)');
    for (let i = 0; i < 6; i++) {
      await stack.cluster.query(`INSERT INTO marker SELECT g FROM generate_series(1, 100000) g`);
      await stack.cluster.query('SELECT pg_switch_wal()');
    }
    await drained();
    const expected = (await stack.cluster.query<{ n: string }>('SELECT count(*)::text AS n FROM marker'))[0]!.n;
    const inDir = path.join(spool, 'archive', stack.stanza, 'in');
    const dir = stack.restoreDir('async-get');
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--archive-mode=off', '--target-action=promote']);
    // With archive-async=y the restore_command the agent writes takes prefetched files with a shell test.
    // While the daemon fetches the segment asked for (its `.fetching` marker), the shell waits for it.
    const restoreCommand = /restore_command = '(.*)'/.exec(fs.readFileSync(path.join(dir, 'postgresql.auto.conf'), 'utf8'))![1]!;
    expect(restoreCommand.startsWith(`openrds_f=${inDir}/%f; test -f $openrds_f && mv $openrds_f "%p" || { [ ! -f $openrds_f.fetching ] || { openrds_w=$openrds_f.$$.wait; mkfifo -m 600 `)).toBe(true);
    expect(restoreCommand).toContain('[ -f $openrds_f.fetching ] && [ ! -f $openrds_f ]');
    expect(restoreCommand).toContain('{ read -r openrds_m < $openrds_f.missing; } 2>/dev/null; [ "$openrds_m" -gt "$(date +%s)" ] && exit 1; } '
      + `|| ${installedBin('openrds-agent')} archive-get %f "%p" --stanza=${stack.stanza} --config=${stack.conf}`);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    try {
      await c.start();
      await c.waitPromoted();
      expect((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM marker'))[0]!.n).toBe(expected);
    } finally {
      await c.destroy();
    }
    // A recovery to the end of the archive asks again for its last segment as it promotes: once
    // recovery took it and the archive ends after it, the daemon queued it once more.
    const deadline = Date.now() + 15_000;
    while (!stack.agent!.logText().includes('again: recovery reached the end of the archive')) {
      if (Date.now() > deadline) throw new Error('the last segment was not fetched again at the end of the archive');
      await new Promise((r) => setTimeout(r, 100));
    }
    const fetched = stack.agent!.logText().split('\n').filter((l) => l.includes('ahead of recovery'));
    expect(fetched.length).toBeGreaterThanOrEqual(3);
    // "Not in the archive" came from the daemon's markers: the next timeline's history file is one.
    expect(Number(fs.readFileSync(path.join(inDir, '00000002.history.missing'), 'utf8'))).toBeGreaterThan(Date.now() / 1000 - 60);
    // The shell front answers from a fresh marker without asking the archive (here it would have
    // found the file), and asks again once the marker is stale.
    const segment = fetched[0]!.match(/'([0-9A-F]{24})'/)![1]!;
    const dest = path.join(stack.dir, 'run', 'got-segment');
    const run = (): Promise<{ code: number }> => runCommand('/bin/sh', ['-c', restoreCommand.replace(/%f/g, segment).replace(/%p/g, dest)],
      { uid: osUser('postgres').uid, gid: osUser('postgres').gid, cwd: '/tmp', timeoutMs: 60_000 });
    fs.writeFileSync(path.join(inDir, `${segment}.missing`), `${Math.floor(Date.now() / 1000) + 60}\n`);
    expect((await run()).code).toBe(1);
    expect(fs.existsSync(dest)).toBe(false);
    fs.writeFileSync(path.join(inDir, `${segment}.missing`), `${Math.floor(Date.now() / 1000) - 1}\n`);
    expect((await run()).code).toBe(0);
    expect(fs.statSync(dest).size).toBe(16 * 1024 * 1024);

    // A segment being fetched: the shell waits for it and takes it, without starting Node (which
    // would answer 1 here: the archive does not have this name).
    const absent = 'FFFFFFFE0000000000000001';
    const runFor = (name: string): Promise<{ code: number }> => runCommand('/bin/sh', ['-c', restoreCommand.replace(/%f/g, name).replace(/%p/g, dest)],
      { uid: osUser('postgres').uid, gid: osUser('postgres').gid, cwd: '/tmp', timeoutMs: 60_000 });
    fs.rmSync(dest);
    fs.writeFileSync(path.join(inDir, `${absent}.fetching`), '');
    const t0 = Date.now();
    const waiting = runFor(absent);
    // It waits on its FIFO (no polling), which the daemon writes to once the file is in place.
    const fifoOf = (): string | undefined => fs.readdirSync(inDir).find((n) => n.startsWith(`${absent}.`) && n.endsWith('.wait'));
    while (!fifoOf() && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
    const fifo = path.join(inDir, fifoOf()!);
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
    fs.writeFileSync(path.join(inDir, `.${absent}.tmp`), 'fetched by the daemon');
    fs.renameSync(path.join(inDir, `.${absent}.tmp`), path.join(inDir, absent));
    fs.rmSync(path.join(inDir, `${absent}.fetching`));
    const t1 = Date.now();
    // As the daemon does: a FIFO its shell has not opened yet refuses (ENXIO), and that shell finds the file when it looks.
    try {
      const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      fs.writeSync(fd, '\n');
      fs.closeSync(fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
    }
    expect((await waiting).code).toBe(0);
    // Woken, not at the end of its 2 s wait.
    expect(Date.now() - t1).toBeLessThan(1500);
    expect(fs.readFileSync(dest, 'utf8')).toBe('fetched by the daemon');
    // Without the marker (and the file), the archive is asked: not there.
    expect((await runFor(absent)).code).toBe(1);

    // A damaged archive copy, fetched through the daemon (a worker decompresses and checks it): the
    // file is named, nothing lands at %p, and PostgreSQL hears 126 (an error), never "not found".
    const walDir = path.join(stack.dir, 'repo', 'archive', stack.stanza, '15-1');
    const storedPath = path.join(walDir, (fs.readdirSync(walDir, { recursive: true }) as string[]).find((n) => path.basename(n).startsWith(`${segment}-`))!);
    const good = fs.readFileSync(storedPath);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    fs.writeFileSync(storedPath, bad);
    try {
      fs.rmSync(dest, { force: true });
      const getOnly = restoreCommand.slice(restoreCommand.lastIndexOf('|| ') + 3);
      const r = await runCommand('/bin/sh', ['-c', getOnly.replace(/%f/g, segment).replace(/%p/g, dest)],
        { uid: osUser('postgres').uid, gid: osUser('postgres').gid, cwd: '/tmp', timeoutMs: 60_000 });
      expect(r.code).toBe(126);
      expect(r.stderr).toMatch(new RegExp(`WAL file '${segment}' from the repo (is damaged|has checksum)`));
      expect(fs.existsSync(dest)).toBe(false);
    } finally {
      fs.writeFileSync(storedPath, good);
    }
  });

  it('a recovery on timeline 2 finds its history file queued by the daemon, the archive\'s own, and recovers', async () => {
    // The cluster restored in place and promoted: timeline 2, archived to the stanza as before.
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    await stack.cluster.stop('immediate');
    fs.rmSync(stack.cluster.dataDir, { recursive: true, force: true });
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`]);
    await stack.cluster.start();
    await stack.cluster.waitPromoted();
    await stack.cluster.query('CREATE TABLE on_tli2 AS SELECT g FROM generate_series(1, 1000) g');
    await stack.cluster.query('SELECT pg_switch_wal()');
    await drained();
    const history = fs.readFileSync(path.join(stack.cluster.dataDir, 'pg_wal', '00000002.history'));
    // A backup on timeline 2, restored as a copy: its recovery asks for 00000002.history first.
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const inDir = path.join(spool, 'archive', stack.stanza, 'in');
    const dir = stack.restoreDir('tli2');
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--archive-mode=off', '--target-action=promote']);
    const queued = path.join(inDir, '00000002.history');
    for (const until = Date.now() + 15_000; !fs.existsSync(queued);) {
      if (Date.now() > until) throw new Error('00000002.history was not queued');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(fs.readFileSync(queued).equals(history)).toBe(true);
    // The next timeline's is not in the archive: answered by a marker.
    expect(Number(fs.readFileSync(path.join(inDir, '00000003.history.missing'), 'utf8'))).toBeGreaterThan(Date.now() / 1000 - 60);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    try {
      await c.start();
      await c.waitPromoted();
      expect((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM on_tli2'))[0]!.n).toBe('1000');
      expect((await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f'))[0]!.f.slice(0, 8)).toBe('00000003');
      expect(fs.readFileSync(c.logFile, 'utf8')).toContain('restored log file "00000002.history" from archive');
    } finally {
      await c.destroy();
    }
  });

  it('drops WAL past archive-push-queue-max while the repo-server is down, loudly, so pg_wal stops growing', async () => {
    await stack.agent!.stop('SIGTERM');
    fs.writeFileSync(stack.conf, fs.readFileSync(stack.conf, 'utf8').replace('[global]\n', '[global]\narchive-push-queue-max=32MB\n'));
    await stack.startAgent();
    await stack.server!.stop('SIGTERM');
    for (let i = 0; i < 5; i++) {
      await stack.cluster.query(`CREATE TABLE q${i} AS SELECT g FROM generate_series(1, 50000) g`);
      await stack.cluster.query('SELECT pg_switch_wal()');
    }
    // The queue never holds much more than the limit (two 16 MiB segments): the rest was dropped.
    const until = Date.now() + 60_000;
    while (readyCount() > 2) {
      if (Date.now() > until) throw new Error(`${readyCount()} WAL file(s) still queued: nothing was dropped`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(stack.agent!.logText()).toMatch(/dropped WAL file '[0-9A-F]{24}' because archive queue exceeded 33554432 bytes/);
    await stack.startServer();
    // One more segment after the drop, archived: the dropped ones are then a gap before it.
    await stack.cluster.query('CREATE TABLE after_drop AS SELECT 1 AS x');
    await stack.cluster.query('SELECT pg_switch_wal()');
    await drained();
    // The dropped WAL is a gap in the archive, which verify reports.
    expect((await verifyArchive()).gaps.length).toBeGreaterThan(0);
  });

  it('keeps one worker thread up after a push, past the idle stop: the next push does not start one', async () => {
    const threads = (): number => fs.readdirSync(`/proc/${stack.agent!.pid}/task`).length;
    const settle = async (ms: number): Promise<void> => { await new Promise((r) => setTimeout(r, ms)); };
    // A new daemon, once every worker its start used has stopped as idle: its threads unchanged for 7 s.
    await drained();
    await stack.agent!.stop('SIGTERM');
    await stack.startAgent();
    let none = threads();
    for (let since = Date.now(), until = Date.now() + 60_000; Date.now() - since < 7000;) {
      if (Date.now() > until) throw new Error('the agent\'s threads did not settle');
      await settle(250);
      const now = threads();
      if (now !== none) { none = now; since = Date.now(); }
    }
    await stack.cluster.query('CREATE TABLE warm AS SELECT g FROM generate_series(1, 100000) g');
    await stack.cluster.query('SELECT pg_switch_wal()');
    await drained();
    // Idle workers stop after 5 s: all but the one a WAL push keeps warm.
    await settle(8000);
    expect(threads()).toBe(none + 1);
  });
});
