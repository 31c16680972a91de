import { PgCluster } from './cluster';
import type { Stack } from '../stack';

/**
 * The everyday scenario on any repository: stanza-create, full backup, pgbench writes, incr
 * backup, a point-in-time restore to a time between two transactions (sentinel rows and the
 * pgbench balance checked), verify. `keys` lists the repository's object names (relative to
 * repo1-path) so that the caller's store is seen to hold the stanza, sealed.
 */
export async function fullIncrPitr(stack: Stack, keys: () => Promise<string[]>, restored: PgCluster[]): Promise<void> {
  const stanza = stack.stanza;
  expect(await stack.adminOk(['stanza-create', `--stanza=${stanza}`])).toContain('created');
  await stack.cluster.pgbench(['-i', '-s', '2', '-q']);
  await stack.cluster.query('CREATE TABLE sentinel (id int PRIMARY KEY, phase text)');
  await stack.cluster.query("INSERT INTO sentinel VALUES (1, 'full')");
  await stack.adminOk(['backup', `--stanza=${stanza}`, '--type=full', '--start-fast']);
  await stack.cluster.pgbench(['-t', '300', '-n']);
  await stack.cluster.query("INSERT INTO sentinel VALUES (2, 'incr')");
  await stack.adminOk(['backup', `--stanza=${stanza}`, '--type=incr', '--start-fast']);
  await stack.cluster.query("INSERT INTO sentinel VALUES (3, 'before target')");
  const [{ t }] = await stack.cluster.query<{ t: string }>('SELECT clock_timestamp()::text AS t');
  await new Promise((r) => setTimeout(r, 1100));
  await stack.cluster.query("INSERT INTO sentinel VALUES (4, 'after target')");
  const sum = (await stack.cluster.query<{ s: string }>('SELECT sum(abalance)::text AS s FROM pgbench_accounts'))[0]!.s;
  await stack.cluster.query('SELECT pg_switch_wal()');
  await stack.adminOk(['check', `--stanza=${stanza}`]);

  const all = await keys();
  expect(all.some((k) => k.startsWith(`backup/${stanza}/`) && k.endsWith('/backup.manifest'))).toBe(true);
  expect(all.some((k) => k.startsWith(`archive/${stanza}/15-1/`))).toBe(true);
  expect(all).toContain(`keys/${stanza}/keyring.info`);

  const dir = stack.restoreDir('pitr');
  await stack.adminOk(['restore', `--stanza=${stanza}`, `--pg1-path=${dir}`, '--archive-mode=off', '--type=time', `--target=${t}`, '--target-action=promote']);
  const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
  restored.push(c);
  await c.start();
  await c.waitPromoted();
  expect((await c.query<{ id: number }>('SELECT id FROM sentinel ORDER BY id')).map((r) => r.id)).toEqual([1, 2, 3]);
  expect((await c.query<{ s: string }>('SELECT sum(abalance)::text AS s FROM pgbench_accounts'))[0]!.s).toBe(sum);
  expect(await stack.adminOk(['verify', `--stanza=${stanza}`])).toContain('status: ok');
}
