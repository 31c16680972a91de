// The agent and openrds-admin reach a repo-server that listens on the backup host's loopback only,
// through an SSH tunnel (ssh2) to a real OpenSSH server started by the test: stanza-create,
// backup, WAL pushes and a restore; the backup host's key is pinned (a wrong known_hosts is
// refused, clearly); a cut tunnel fails the backup cleanly and the next backup resumes it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { osUser } from './harness/processes';
import { TUNNEL_USER, sshdStart, type Sshd } from './harness/sshd';
import { Stack } from './stack';

jest.setTimeout(900_000);

describe('SSH tunnel to the repo-server', () => {
  let sshd: Sshd;
  let stack: Stack;
  const restored: PgCluster[] = [];

  beforeAll(async () => {
    sshd = await sshdStart(osUser('postgres'));
    stack = await Stack.create({ version: 15, stanza: 'ssh', globalOptions: {
      'repo-host-type': 'ssh', 'repo-host': '127.0.0.1', 'repo-host-user': TUNNEL_USER, 'repo-host-ssh-port': String(sshd.port),
      'repo-host-ssh-key-file': sshd.keyFile, 'repo-host-ssh-known-hosts': sshd.knownHosts, 'manifest-save-threshold': '1048576',
    } });
    await stack.start();
  });
  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    await stack?.destroy();
    await sshd?.stop();
  });

  const backupDir = (): string => path.join(stack.dir, 'repo', 'backup', stack.stanza);

  it('runs stanza-create, backup (WAL pushed through the tunnel) and restore', async () => {
    expect(await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`])).toContain('created');
    await stack.adminOk(['check', `--stanza=${stack.stanza}`]);
    await stack.cluster.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g');
    await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    const agents = await stack.adminOk(['agents']);
    expect(agents).toContain(`stanza ${stack.stanza}`);
    const dir = stack.restoreDir('via-ssh');
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off']);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(c);
    await c.start();
    await c.waitPromoted();
    expect((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM t'))[0]!.n).toBe('100000');
    // The sessions really went through sshd.
    expect(fs.readFileSync(path.join(sshd.dir, 'sshd.log'), 'utf8')).toMatch(new RegExp(`Accepted publickey for ${TUNNEL_USER}`));
  });

  it('refuses a backup host whose key is not the pinned one, and a private key others can read', async () => {
    const wrong = path.join(sshd.dir, 'wrong_known_hosts');
    // Another server's key under this host's name.
    fs.writeFileSync(wrong, `[127.0.0.1]:${sshd.port} ${fs.readFileSync(`${sshd.keyFile}.pub`, 'utf8')}`);
    const r = await stack.admin(['agents', `--repo-host-ssh-known-hosts=${wrong}`], { timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the ssh host key of 127.0.0.1:${sshd.port} is not the one pinned in '${wrong}'`);
    const loose = path.join(sshd.dir, 'loose_key');
    fs.copyFileSync(sshd.keyFile, loose);
    fs.chmodSync(loose, 0o644);
    const k = await stack.admin(['agents', `--repo-host-ssh-key-file=${loose}`]);
    expect(k.code).toBe(28);
    expect(k.stderr).toContain(`repo-host-ssh-key-file '${loose}' is readable or writable by group or others`);
  });

  it('a tunnel cut during a backup fails it cleanly; the agent reconnects and the next backup resumes', async () => {
    for (let i = 0; i < 6; i++) {
      await stack.cluster.query(`CREATE TABLE big${i} AS SELECT g, md5(g::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 120000) g`);
    }
    await stack.cluster.query('CHECKPOINT');
    const result = stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    let label: string | undefined;
    const until = Date.now() + 120_000;
    while (!label) {
      label = fs.existsSync(backupDir()) ? fs.readdirSync(backupDir()).find((n) => fs.existsSync(path.join(backupDir(), n, 'backup.partial.copy'))) : undefined;
      if (!label && Date.now() > until) throw new Error(`no resumable record appeared: ${JSON.stringify(await result)}`);
      if (!label) await new Promise((r) => setTimeout(r, 20));
    }
    await sshd.cutSessions();
    const failed = await result;
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/ERROR: \[\d+\]/);
    // The agent's session comes back through a new tunnel.
    const back = Date.now() + 60_000;
    while (!(await stack.admin(['agents'])).stdout.includes(`stanza ${stack.stanza}`)) {
      if (Date.now() > back) throw new Error('the agent did not reconnect through the tunnel');
      await new Promise((r) => setTimeout(r, 500));
    }
    const digest = await stack.cluster.dataDigest();
    const resumed = await stack.admin(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`full ${label} resuming the interrupted backup`);
    const dir = stack.restoreDir('after-cut');
    await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--set=${label}`, `--pg1-path=${dir}`, '--type=immediate', '--target-action=promote', '--archive-mode=off']);
    const c = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(c);
    await c.start();
    await c.waitPromoted();
    expect(await c.dataDigest()).toBe(digest);
  });
});
