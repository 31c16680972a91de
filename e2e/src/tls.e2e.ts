// The user story of a repo-server reached over mutual TLS: certificates made with openrds-admin
// pki, an agent and openrds-admin authorized by their certificate's CN, stanza-create, backup and
// restore over TLS; and every client that must not get in is refused with error 72, a message that
// names the reason, and a line in the repo-server's log naming the CN and the stanza.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { osUser, runCommand, runOk } from './harness/processes';
import { Stack, installedBin } from './stack';

jest.setTimeout(600_000);

describe('mutual TLS between agent, openrds-admin and repo-server', () => {
  let stack: Stack;
  const restored: PgCluster[] = [];

  beforeAll(async () => {
    stack = await Stack.create({ version: 15, tls: true });
    await stack.start();
  });

  afterAll(async () => {
    for (const c of restored) await c.destroy().catch(() => undefined);
    await stack?.destroy();
  });

  const serverLog = (): string => fs.readFileSync(path.join(stack.dir, 'repo-server.log'), 'utf8');
  /** Waits for a line in the repo-server log (it is written as the refusal happens). */
  async function serverLogged(re: RegExp): Promise<string> {
    for (let i = 0; i < 50; i++) {
      const line = serverLog().split('\n').find((l) => re.test(l));
      if (line) return line;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`repo-server log has no line matching ${re}:\n${serverLog().slice(-3000)}`);
  }

  it('made its certificates with openrds-admin pki: keys 0600, the agent key owned by postgres', () => {
    const pki = stack.pki!;
    for (const f of ['ca.key', 'server.key', 'admin.key', `${pki.agentCn}.key`]) expect(fs.statSync(path.join(pki.dir, f)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(pki.dir, `${pki.agentCn}.key`)).uid).toBe(osUser('postgres').uid);
    expect(serverLog()).toContain('(mutual TLS)');
    expect(serverLog()).toMatch(new RegExp(`agent '.*' \\(.*\\(cn ${pki.agentCn}\\)\\) connected for stanza '${stack.stanza}'`));
  });

  it('creates the stanza, archives WAL, backs up and restores over TLS', async () => {
    expect(await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`])).toContain(`stanza '${stack.stanza}' created`);
    // check forces a WAL switch: archive_command (openrds-agent archive-push) reaches the archive over TLS.
    expect(await stack.adminOk(['check', `--stanza=${stack.stanza}`])).toMatch(/WAL segment [0-9A-F]{24} successfully archived/);
    await stack.cluster.pgbench(['-i', '-s', '1', '-q']);
    await stack.cluster.query("CREATE TABLE sentinel (id int PRIMARY KEY, phase text); INSERT INTO sentinel VALUES (1, 'before backup')");
    expect(await stack.adminOk(['backup', `--stanza=${stack.stanza}`, '--type=full', '--start-fast'])).toMatch(/full backup \d{8}-\d{6}F complete/);
    const digest = await stack.cluster.dataDigest();

    const dir = stack.restoreDir('tls');
    expect(await stack.adminOk(['restore', `--stanza=${stack.stanza}`, `--pg1-path=${dir}`, '--archive-mode=off', '--type=immediate', '--target-action=promote']))
      .toMatch(/restore of backup set \d{8}-\d{6}F complete/);
    const cluster = await PgCluster.fromExistingDataDir(dir, { version: 15 });
    restored.push(cluster);
    await cluster.start();
    await cluster.waitPromoted();
    expect(await cluster.dataDigest()).toEqual(digest);
    await cluster.stop();
  });

  it('answers server-ping without a client certificate', async () => {
    const r = await stack.admin(['server-ping', '--no-repo-host-cert-file', '--no-repo-host-key-file']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^repo-server localhost:\d+ \(.+\) answered in \d+ ms\n$/);
    expect(r.code).toBe(0);
  });

  it('refuses an admin command without a client certificate', async () => {
    const r = await stack.admin(['info', '--no-repo-host-cert-file', '--no-repo-host-key-file']);
    expect(r.code).toBe(72);
    expect(r.stderr).toContain('ERROR: [72]: the repo-server requires a client certificate signed by its CA');
    expect(r.stderr).toContain('HINT: no client certificate is configured (repo-host-cert-file)');
    await serverLogged(/WARN: access denied: \/openrds\.v1\.Admin\/Run from 127\.0\.0\.1:\d+ cn <no verified certificate>/);
  });

  it('refuses a certificate from another CA, even with an admin CN', async () => {
    const other = path.join(stack.dir, 'other-pki');
    await runOk(installedBin('openrds-admin'), ['pki', 'init', `--pki-path=${other}`, '--no-config']);
    await runOk(installedBin('openrds-admin'), ['pki', 'issue', '--cn=admin', `--pki-path=${other}`, '--no-config']);
    const before = serverLog().length;
    const r = await stack.admin(['info', `--repo-host-cert-file=${other}/admin.crt`, `--repo-host-key-file=${other}/admin.key`]);
    expect(r.code).toBe(72);
    expect(r.stderr).toContain('the repo-server requires a client certificate signed by its CA: none was presented, or it did not verify');
    await serverLogged(/access denied: \/openrds\.v1\.Admin\/Run .* cn <no verified certificate>/);
    expect(serverLog().length).toBeGreaterThan(before);
  });

  it('refuses an expired certificate of the right CA, and the client says it expired', async () => {
    const pki = stack.pki!;
    const expired = path.join(stack.dir, 'expired.crt');
    const csr = await runOk('openssl', ['req', '-new', '-key', `${pki.dir}/admin.key`, '-subj', '/CN=admin']);
    const crt = await runCommand('openssl', ['x509', '-req', '-CA', `${pki.dir}/ca.crt`, '-CAkey', `${pki.dir}/ca.key`, '-days', '-1', '-set_serial', '99', '-out', expired], { input: csr });
    expect(crt.code).toBe(0);
    const r = await stack.admin(['info', `--repo-host-cert-file=${expired}`]);
    expect(r.code).toBe(72);
    expect(r.stderr).toContain('requires a client certificate signed by its CA');
    expect(r.stderr).toMatch(new RegExp(`HINT: the client certificate '${expired}' \\(CN 'admin'\\) expired on `));
  });

  it('refuses an agent certificate running an admin command', async () => {
    const pki = stack.pki!;
    const r = await stack.admin(['info', `--repo-host-cert-file=${pki.dir}/${pki.agentCn}.crt`, `--repo-host-key-file=${pki.dir}/${pki.agentCn}.key`]);
    expect(r.code).toBe(72);
    expect(r.stderr).toContain(`ERROR: [72]: client certificate CN '${pki.agentCn}' may not run admin commands`);
    expect(r.stderr).toContain(`HINT: on the repo-server, add it to tls-server-admin`);
    await serverLogged(new RegExp(`access denied: /openrds\\.v1\\.Admin/Run from .* cn '${pki.agentCn}': client certificate CN '${pki.agentCn}' may not run admin commands`));
  });

  it('refuses the agent of stanza e2e pushing WAL to, or getting WAL from, another stanza', async () => {
    const pg = osUser('postgres');
    const wal = (await fs.promises.readdir(path.join(stack.cluster.dataDir, 'pg_wal'))).find((f) => /^[0-9A-F]{24}$/.test(f))!;
    const agent = (args: string[]) => runCommand(installedBin('openrds-agent'), [...args, '--stanza=other', `--config=${stack.conf}`,
      // Straight to the repo-server: the local daemon would refuse another stanza itself.
      `--agent-socket-path=${stack.dir}/no-daemon.sock`], { env: process.env, uid: pg.uid, gid: pg.gid, timeoutMs: 60_000 });
    const push = await agent(['archive-push', path.join(stack.cluster.dataDir, 'pg_wal', wal)]);
    expect(push.code).toBe(72);
    expect(push.stderr).toContain(`client certificate CN '${stack.pki!.agentCn}' is not authorized for stanza 'other'`);
    // A push asks for the stanza's archive key first (encrypted repositories): refused there already.
    await serverLogged(new RegExp(`access denied: /openrds\\.v1\\.AgentGateway/Archive(Key|Push) from .* cn '${stack.pki!.agentCn}' stanza 'other'`));

    const get = await agent(['archive-get', wal, path.join(stack.dir, 'fetched')]);
    // archive-get turns every error into 126 for PostgreSQL; the message says why.
    expect(get.code).toBe(126);
    expect(get.stderr).toContain(`client certificate CN '${stack.pki!.agentCn}' is not authorized for stanza 'other'`);
    await serverLogged(new RegExp(`access denied: /openrds\\.v1\\.AgentGateway/ArchiveGet from .* cn '${stack.pki!.agentCn}' stanza 'other'`));
  });

  it('refuses a client key that others can read, before dialing', async () => {
    const pki = stack.pki!;
    const loose = path.join(stack.dir, 'loose.key');
    fs.copyFileSync(`${pki.dir}/admin.key`, loose);
    fs.chmodSync(loose, 0o644);
    const r = await stack.admin(['info', `--repo-host-key-file=${loose}`]);
    expect(r.code).toBe(28);
    expect(r.stderr).toContain(`ERROR: [28]: repo-host-key-file '${loose}' is readable or writable by group or others (mode 0644)`);
    expect(r.stderr).toContain(`HINT: chmod 600 '${loose}'`);
  });
  it('refuses a revoked certificate within seconds of pki revoke (tls-server-crl-file re-read), and logs it', async () => {
    const pki = stack.pki!;
    const admin = installedBin('openrds-admin');
    // A CRL from the start (revoking a certificate nobody uses), and the repo-server told about it.
    await runOk(admin, ['pki', 'issue', '--cn=unused', `--pki-path=${pki.dir}`, '--no-config']);
    expect(await runOk(admin, ['pki', 'revoke', '--cn=unused', `--pki-path=${pki.dir}`, '--no-config'])).toContain("revoked the certificate of CN 'unused'");
    fs.writeFileSync(stack.conf, fs.readFileSync(stack.conf, 'utf8').replace('[global]\n', `[global]\ntls-server-crl-file=${pki.dir}/crl.pem\n`));
    await stack.server!.stop('SIGTERM');
    await stack.startServer();
    await serverLogged(/tls-server-crl-file '.*crl\.pem': 1 revoked certificate\(s\)/);

    await runOk(admin, ['pki', 'revoke', `--cn=${pki.agentCn}`, `--pki-path=${pki.dir}`, '--no-config']);
    const pg = osUser('postgres');
    const wal = (await fs.promises.readdir(path.join(stack.cluster.dataDir, 'pg_wal'))).find((f) => /^[0-9A-F]{24}$/.test(f))!;
    const until = Date.now() + 30_000;
    for (;;) {
      const push = await runCommand(installedBin('openrds-agent'), ['archive-push', path.join(stack.cluster.dataDir, 'pg_wal', wal), `--stanza=${stack.stanza}`,
        `--config=${stack.conf}`, `--agent-socket-path=${stack.dir}/no-daemon.sock`], { env: process.env, uid: pg.uid, gid: pg.gid, timeoutMs: 60_000 });
      if (push.code === 72) {
        expect(push.stderr).toMatch(new RegExp(`client certificate CN '${pki.agentCn}' \\(serial [0-9A-F]+\\) is revoked`));
        break;
      }
      if (Date.now() > until) throw new Error(`the revoked certificate was still accepted: ${push.code} ${push.stderr}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    await serverLogged(new RegExp(`access denied: .* cn '${pki.agentCn}'.* is revoked`));
    // The admin certificate is not revoked.
    expect((await stack.admin(['info'])).code).toBe(0);
  });
});

// Pre-streaming (archive-push-stream) over mutual TLS: its calls (ArchiveStage, and ArchivePushes
// for the rest of each segment) were refused under TLS until stop 30, when the methods the
// repo-server serves to agents were listed without them (every segment then went whole).
describe('WAL streamed ahead over mutual TLS', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await Stack.create({ version: 15, tls: true, globalOptions: { 'archive-async': 'y', 'archive-push-stream': 'y', 'process-max': '2' } });
    const pg = osUser('postgres');
    const spool = path.join(stack.dir, 'run', 'spool');
    fs.mkdirSync(spool, { recursive: true, mode: 0o700 });
    fs.chownSync(spool, pg.uid, pg.gid);
    fs.writeFileSync(stack.conf, fs.readFileSync(stack.conf, 'utf8').replace('[global]\n', `[global]\nspool-path=${spool}\n`));
    await stack.start();
    const printed = await runCommand(installedBin('openrds-agent'), ['archive-command', `--stanza=${stack.stanza}`, `--config=${stack.conf}`], {});
    const line = /^archive_command = ('.*')$/m.exec(printed.stdout)?.[1];
    expect(line).toContain('daemon.alive');
    await stack.cluster.query(`ALTER SYSTEM SET archive_command = ${line!}`);
    await stack.cluster.query('SELECT pg_reload_conf()');
    await stack.adminOk(['stanza-create', `--stanza=${stack.stanza}`]);
  });
  afterAll(async () => { await stack?.destroy(); });

  it('stages each segment while PostgreSQL writes it and pushes its rest on the stream: nothing refused, nothing missing', async () => {
    await stack.cluster.pgbench(['-i', '-s', '2', '-q']);
    await stack.cluster.query('CHECKPOINT');
    await stack.cluster.pgbench(['-n', '-c', '2', '-T', '10']);
    await stack.cluster.query('SELECT pg_switch_wal()');
    const status = path.join(stack.cluster.dataDir, 'pg_wal', 'archive_status');
    for (let i = 0; i < 600 && fs.readdirSync(status).some((n) => n.endsWith('.ready')); i++) await new Promise((r) => setTimeout(r, 200));
    expect(fs.readdirSync(status).filter((n) => n.endsWith('.ready'))).toEqual([]);
    const staged = stack.agent!.logText().split('\n').filter((l) => l.includes('bytes staged ahead'));
    expect(staged.length).toBeGreaterThanOrEqual(1);
    expect(fs.readFileSync(path.join(stack.dir, 'repo-server.log'), 'utf8')).not.toMatch(/access denied/);
    const archive = JSON.parse((await stack.admin(['verify', `--stanza=${stack.stanza}`, '--output=json'])).stdout).archive[0];
    expect(archive.bad).toEqual([]);
    expect(archive.gaps).toEqual([]);
  });
});
