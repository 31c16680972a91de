// The agent refuses to run as root, except for restores with --restore-as-root: then it refuses
// backups and SQL, and every restored file belongs to the cluster's owner.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { osUser, runCommand, spawnService } from './harness/processes';
import { Stack, installedBin } from './stack';

jest.setTimeout(600_000);

describe('restore as root', () => {
  let stack: Stack;
  const pg = osUser('postgres');
  beforeAll(async () => {
    stack = await Stack.create({ version: 15, stanza: 'root' });
    await stack.start();
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
    await stack.cluster.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g');
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    await stack.agent!.stop('SIGTERM');
  });
  afterAll(async () => { await stack?.destroy(); });

  it('refuses root without the flag; with it, refuses backups and restores files owned by postgres', async () => {
    const plain = await runCommand(installedBin('openrds-agent'), ['serve', `--stanza=${stack.stanza}`, `--config=${stack.conf}`], { env: process.env, timeoutMs: 30_000 });
    expect(plain.code).toBe(31);
    expect(plain.stderr).toContain('openrds-agent must run as the owner of');
    expect(plain.stderr).toContain('--restore-as-root');

    const agent = await spawnService({
      cmd: installedBin('openrds-agent'), args: ['serve', `--stanza=${stack.stanza}`, `--config=${stack.conf}`, '--restore-as-root'], env: process.env,
      logFile: path.join(stack.dir, 'root-agent.log'),
      readyWhen: async () => (await stack.admin(['agents'])).stdout.includes(`stanza ${stack.stanza}`), timeoutMs: 20_000,
    });
    try {
      expect(await stack.admin(['agents'])).toMatchObject({ stdout: expect.stringContaining('user root') });
      const backup = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full']);
      expect(backup.code).toBe(72);
      expect(backup.stderr).toContain('the agent runs as root for restores only (restore-as-root): it refuses');
      const dir = stack.restoreDir('as-root');
      await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off']);
      const notOwned = (fs.readdirSync(dir, { recursive: true }) as string[]).map((n) => path.join(dir, n))
        .filter((p) => { const st = fs.lstatSync(p); return st.uid !== pg.uid || st.gid !== pg.gid; });
      expect(notOwned).toEqual([]);
      expect(fs.statSync(dir).uid).toBe(pg.uid);
      const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
      try {
        await c.start();
        await c.waitPromoted();
        expect((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM t'))[0]!.n).toBe('10000');
      } finally {
        await c.destroy();
      }
    } finally {
      await agent.stop('SIGTERM');
    }
  });
});
