// Disaster recovery in place: the host lost its data directory and its tablespace; the backup is
// restored where the cluster was, tablespace link and contents included, and the cluster starts
// with every row, having replayed the archive to its end.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { osUser } from './harness/processes';
import { Stack } from './stack';

jest.setTimeout(600_000);

describe('restore in place of a cluster with a tablespace', () => {
  let stack: Stack;
  afterAll(async () => { await stack?.destroy(); });

  it('brings back PGDATA, the tablespace link and its contents, and WAL written after the backup', async () => {
    stack = await Stack.create({ version: 15, stanza: 'ts' });
    await stack.start();
    const pg = osUser('postgres');
    const tsDir = path.join(stack.dir, 'tablespace-ts1');
    fs.mkdirSync(tsDir, { mode: 0o700 });
    fs.chownSync(tsDir, pg.uid, pg.gid);
    await stack.cluster.query(`CREATE TABLESPACE ts1 LOCATION '${tsDir}'`);
    await stack.cluster.query('CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g');
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const manifest = JSON.parse(fs.readFileSync(path.join(stack.dir, 'repo', 'backup', 'ts',
      fs.readdirSync(path.join(stack.dir, 'repo', 'backup', 'ts')).find((d) => d.endsWith('F'))!, 'backup.manifest'), 'utf8'));
    const target = manifest.targets.find((t: { type: string }) => t.type === 'link');
    expect(target).toEqual(expect.objectContaining({ path: tsDir, tablespaceName: 'ts1' }));
    expect(manifest.files.some((f: { name: string }) => f.name === 'pg_data/tablespace_map')).toBe(true);
    expect(manifest.files.some((f: { name: string }) => f.name.startsWith(`${target.name}/PG_15_`))).toBe(true);

    // Written after the backup: must come back from the archive.
    await stack.cluster.query('INSERT INTO in_ts SELECT g, md5(g::text) FROM generate_series(20001, 25000) g');
    const [{ sum }] = await stack.cluster.query("SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) AS sum FROM in_ts");
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);

    // The disaster: cluster down, data directory gone, the tablespace's volume empty.
    await stack.cluster.stop('immediate');
    fs.rmSync(stack.cluster.dataDir, { recursive: true, force: true });
    for (const e of fs.readdirSync(tsDir)) fs.rmSync(path.join(tsDir, e), { recursive: true, force: true });

    // The restored cluster is the primary again: it keeps archiving (its new timeline) to the stanza.
    const out = await stack.adminOk(['restore', `--stanza=${stack.stanza}`]);
    expect(out).toContain(`to '${stack.cluster.dataDir}'`);
    const link = path.join(stack.cluster.dataDir, 'pg_tblspc', String(target.tablespaceId));
    expect(fs.readlinkSync(link)).toBe(tsDir);
    expect(fs.statSync(tsDir).uid).toBe(pg.uid);

    await stack.cluster.start();
    await stack.cluster.waitPromoted();
    const [{ sum: got }] = await stack.cluster.query("SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) AS sum FROM in_ts");
    expect(got).toBe(sum);
    const [{ spc }] = await stack.cluster.query("SELECT pg_tablespace_location(oid) AS spc FROM pg_tablespace WHERE spcname = 'ts1'");
    expect(spc).toBe(tsDir);
  });

  it('restores a copy elsewhere with the tablespace moved by --tablespace-map, beside the running cluster', async () => {
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const pg = osUser('postgres');
    const [{ sum }] = await stack.cluster.query("SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) AS sum FROM in_ts");
    const dir = stack.restoreDir('copy');
    const movedTs = path.join(path.dirname(dir), 'ts1-moved');
    fs.mkdirSync(movedTs, { mode: 0o700 });
    fs.chownSync(movedTs, pg.uid, pg.gid);
    const bad = await stack.admin(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--tablespace-map=nope=/x']);
    expect(bad.code).toBe(31);
    expect(bad.stderr).toContain("tablespace 'nope' of option 'tablespace-map' is not in backup set");
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, `--tablespace-map=ts1=${movedTs}`,
      '--type=immediate', '--target-action=promote', '--archive-mode=off']);
    const copy = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    try {
      await copy.start();
      await copy.waitPromoted();
      const [{ spc }] = await copy.query("SELECT pg_tablespace_location(oid) AS spc FROM pg_tablespace WHERE spcname = 'ts1'");
      expect(spc).toBe(movedTs);
      const [{ sum: got }] = await copy.query("SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) AS sum FROM in_ts");
      expect(got).toBe(sum);
    } finally {
      await copy.destroy();
    }
  });
});
