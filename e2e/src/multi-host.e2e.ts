// Two hosts: the backup host is a network namespace of its own (made by the test with `ip netns`
// and a veth pair on a private /30), the database host is the test's namespace. The agent and
// openrds-admin reach the repo-server across the veth over mutual TLS; then, with the repo-server
// listening on the backup host's loopback only, through an SSH tunnel to a real sshd there.
import { randomBytes } from 'node:crypto';
import { PgCluster } from './harness/cluster';
import { osUser, runCommand, runOk } from './harness/processes';
import { TUNNEL_USER, sshdStart, type Sshd } from './harness/sshd';
import { Stack } from './stack';

jest.setTimeout(900_000);

describe('database host and backup host in separate network namespaces', () => {
  const id = randomBytes(2).toString('hex');
  const ns = `orbk${id}`;
  const vethHost = `orva${id}`;
  const vethBackup = `orvb${id}`;
  const octet = 1 + (parseInt(id, 16) % 250);
  const dbAddress = `10.231.${octet}.1`;
  const backupAddress = `10.231.${octet}.2`;
  const restored: PgCluster[] = [];
  const stacks: Stack[] = [];
  let sshd: Sshd | undefined;

  beforeAll(async () => {
    await runOk('ip', ['netns', 'add', ns]);
    await runOk('ip', ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethBackup]);
    await runOk('ip', ['link', 'set', vethBackup, 'netns', ns]);
    await runOk('ip', ['addr', 'add', `${dbAddress}/30`, 'dev', vethHost]);
    await runOk('ip', ['link', 'set', vethHost, 'up']);
    await runOk('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${backupAddress}/30`, 'dev', vethBackup]);
    await runOk('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', vethBackup, 'up']);
    await runOk('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  });
  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    for (const s of stacks) await s.destroy().catch(() => undefined);
    await sshd?.stop().catch(() => undefined);
    await runCommand('ip', ['link', 'del', vethHost], {});
    await runCommand('ip', ['netns', 'del', ns], {});
  });

  async function backupAndRestore(stack: Stack, name: string): Promise<void> {
    expect(await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`])).toContain('created');
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
    await stack.cluster.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 50000) g');
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const dir = stack.restoreDir(name);
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off']);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(c);
    await c.start();
    await c.waitPromoted();
    expect((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM t'))[0]!.n).toBe('50000');
  }

  it('mutual TLS across the veth: stanza-create, check, backup, restore', async () => {
    const stack = await Stack.create({ version: 15, stanza: 'mhtls', tls: true, serverNetns: { name: ns, address: backupAddress } });
    stacks.push(stack);
    await stack.start();
    // The repo-server is on the other host: not on this one's loopback.
    const local = await stack.admin(['server-ping', '--repo-host=127.0.0.1'], { timeoutMs: 30_000 });
    expect(local.code).not.toBe(0);
    expect((await stack.adminOk(['agents']))).toMatch(new RegExp(`stanza mhtls .* from (ipv4:)?${dbAddress.replace(/\./g, '\\.')}`));
    await backupAndRestore(stack, 'tls');
  });

  it('an SSH tunnel to the backup host, whose repo-server listens on its loopback only', async () => {
    sshd = await sshdStart(osUser('postgres'), { netns: ns, address: backupAddress });
    const stack = await Stack.create({ version: 15, stanza: 'mhssh', serverNetns: { name: ns }, globalOptions: {
      'repo-host-type': 'ssh', 'repo-host': backupAddress, 'repo-host-user': TUNNEL_USER, 'repo-host-ssh-port': String(sshd.port),
      'repo-host-ssh-key-file': sshd.keyFile, 'repo-host-ssh-known-hosts': sshd.knownHosts,
    } });
    stacks.push(stack);
    await stack.start();
    // Nothing listens for gRPC on the backup host's veth address: only SSH does.
    const direct = await stack.admin(['server-ping', '--repo-host-type=direct'], { timeoutMs: 30_000 });
    expect(direct.code).not.toBe(0);
    await backupAndRestore(stack, 'ssh');
  });
});
