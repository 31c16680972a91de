// The user story of the quickstart on PostgreSQL 15 with data checksums: stanza-create, check,
// a full backup, more writes, and restores to a point in time (a time between two transactions,
// a named restore point), each started and checked by reading sentinel rows and a full dump.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { PgCluster } from './harness/cluster';
import { Stack } from './stack';

jest.setTimeout(600_000);

describe('PostgreSQL 15: full backup and point-in-time restore', () => {
  let stack: Stack;
  const restored: PgCluster[] = [];

  beforeAll(async () => {
    stack = await Stack.create({ version: 15 });
    await stack.start();
  });

  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    await stack?.destroy();
  });

  /** Restores with the given options into a new directory, starts it, and waits for promotion. */
  async function restoreAndStart(name: string, args: string[]): Promise<PgCluster> {
    const dir = stack.restoreDir(name);
    // A copy for inspection: it must not archive its new timeline into the stanza.
    const out = await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--archive-mode=off', ...args]);
    expect(out).toMatch(/restore of backup set \d{8}-\d{6}F complete/);
    const cluster = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(cluster);
    await cluster.start();
    await cluster.waitPromoted();
    return cluster;
  }

  it('runs the installed daemons with jemalloc where the machine has it (two glibc arenas otherwise)', () => {
    const haveJemalloc = execFileSync('sh', ['-c', 'ldconfig -p | grep -c "libjemalloc\\.so\\.2 " || true'], { encoding: 'utf8' }).trim() !== '0';
    // The repo-server gives freed pages back within a second; the agent keeps them jemalloc's 10 s
    // (a WAL segment's buffers are not faulted in afresh each time).
    for (const [pid, decay] of [[stack.agent!.pid, 10000], [stack.server!.pid, 1000]] as const) {
      expect(fs.readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libjemalloc.so.2')).toBe(haveJemalloc);
      const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      expect(environ).toContain('MALLOC_ARENA_MAX=2');
      if (haveJemalloc && !process.env.MALLOC_CONF) expect(environ).toContain(`MALLOC_CONF=background_thread:true,dirty_decay_ms:${decay},muzzy_decay_ms:0`);
    }
  });

  it('creates the stanza and passes check (a forced WAL switch reaches the archive)', async () => {
    expect(await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`])).toContain(`stanza '${stack.stanza}' created`);
    // Running it again for the same cluster is harmless.
    expect(await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`])).toContain('already exists');
    expect(await stack.adminOk(['check', `--stanza=${stack.stanza}`])).toMatch(/WAL segment [0-9A-F]{24} successfully archived/);
  });

  it('takes a full backup that info shows in text and in pgBackRest JSON shape', async () => {
    await stack.cluster.pgbench(['-i', '-s', '2', '-q']);
    await stack.cluster.query('CREATE TABLE sentinel (id int PRIMARY KEY, phase text)');
    await stack.cluster.query("INSERT INTO sentinel VALUES (1, 'before backup')");
    const out = await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    expect(out).toMatch(/full backup \d{8}-\d{6}F complete/);

    const text = await stack.adminOk(['info', `--stanza=${stack.stanza}`]);
    expect(text).toContain(`stanza: ${stack.stanza}`);
    expect(text).toMatch(/full backup: \d{8}-\d{6}F/);
    expect(text).toMatch(/wal archive min\/max \(15-1\): [0-9A-F]{24}\/[0-9A-F]{24}/);

    const json = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']));
    expect(json).toHaveLength(1);
    expect(json[0].name).toBe(stack.stanza);
    expect(json[0].status.code).toBe(0);
    expect(json[0].db[0]).toEqual(expect.objectContaining({ id: 1, version: '15' }));
    const b = json[0].backup[0];
    expect(b.type).toBe('full');
    expect(b.archive.start).toMatch(/^[0-9A-F]{24}$/);
    expect(b.info.size).toBeGreaterThan(30 * 1024 * 1024);
    expect(b.info.repository.size).toBeLessThan(b.info.size);
    expect(b.timestamp.stop).toBeGreaterThanOrEqual(b.timestamp.start);
  });

  it("stops the agent's worker threads once they sit idle, and a later backup starts new ones", async () => {
    const threads = (): number => fs.readdirSync(`/proc/${stack.agent!.pid}/task`).length;
    // The most threads the agent runs while a backup uses its workers (process-max 2).
    const backupThreads = async (): Promise<number> => {
      let most = threads();
      const sampler = setInterval(() => { most = Math.max(most, threads()); }, 20);
      try {
        expect(await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast', '--process-max=2'])).toMatch(/full backup \d{8}-\d{6}F complete/);
      } finally {
        clearInterval(sampler);
      }
      return most;
    };
    const most = await backupThreads();
    // Idle for 5 s, the workers stop (each is one thread): without that the count stays.
    const until = Date.now() + 30_000;
    while (threads() >= most && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    const idle = threads();
    expect(idle).toBeLessThan(most);
    expect(await backupThreads()).toBeGreaterThan(idle);
  });

  it('restores to a time between two transactions: the first is there, the second is not, and the dumps match', async () => {
    await stack.cluster.query("INSERT INTO sentinel VALUES (2, 'after backup, before target')");
    await new Promise((r) => setTimeout(r, 1100));
    const [{ t }] = await stack.cluster.query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t");
    const dumpAtTarget = await stack.cluster.dumpAll();
    await new Promise((r) => setTimeout(r, 1100));
    await stack.cluster.query("INSERT INTO sentinel VALUES (3, 'after target')");
    await stack.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100');
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);

    const cluster = await restoreAndStart('pitr-time', ['--type=time', `--target=${t}`, '--target-action=promote']);
    const rows = await cluster.query('SELECT id FROM sentinel ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2]);
    expect(await cluster.dumpAll()).toEqual(dumpAtTarget);
    await cluster.stop();
  });

  it('restores to a named restore point', async () => {
    await stack.cluster.query("INSERT INTO sentinel VALUES (4, 'before restore point')");
    await stack.cluster.query("SELECT pg_create_restore_point('openrds-e2e-point')");
    await stack.cluster.query("INSERT INTO sentinel VALUES (5, 'after restore point')");
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);

    const cluster = await restoreAndStart('pitr-name', ['--type=name', '--target=openrds-e2e-point', '--target-action=promote']);
    const rows = await cluster.query('SELECT id FROM sentinel ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4]);
    const [{ n }] = await cluster.query('SELECT count(*)::int AS n FROM pgbench_accounts');
    expect(n).toBe(200000);
    await cluster.stop();
  });
});
