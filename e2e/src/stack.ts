import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgCluster } from './harness/cluster';
import { freePort, osUser, runCommand, runOk, spawnService, tmpDir } from './harness/processes';

/** The installed programs (deploy/install.sh run by the e2e global setup). */
export function installedBin(name: 'openrds-agent' | 'openrds-admin' | 'openrds-repo-server'): string {
  const prefix = process.env.OPENRDS_E2E_PREFIX;
  if (!prefix) throw new Error('OPENRDS_E2E_PREFIX is not set: the e2e global setup did not install the programs (run npm run build)');
  return path.join(prefix, 'bin', name);
}

/**
 * How to start an installed program: its wrapper, or node with `flags` and the wrapper's script
 * (the wrapper is `exec node <script> "$@"`).
 */
function withNodeFlags(name: 'openrds-agent' | 'openrds-repo-server', flags: string[], args: string[]): { cmd: string; args: string[] } {
  if (flags.length === 0) return { cmd: installedBin(name), args };
  const exec = /^exec .*$/m.exec(fs.readFileSync(installedBin(name), 'utf8'))?.[0] ?? '';
  const script = /"([^"]+\.js)"/.exec(exec)?.[1];
  if (!script) throw new Error(`${installedBin(name)} does not name its script`);
  // The wrapper's own node flags (the agent's young generation) stay, before the extra ones.
  const own = exec.slice(0, exec.indexOf(`"${script}"`)).split(/\s+/).filter((t) => t.startsWith('--'));
  return { cmd: process.execPath, args: [...own, ...flags, script, ...args] };
}

export interface StackOptions {
  version: number;
  stanza?: string;
  dataChecksums?: boolean;
  /** Extra [global] lines for openrds.conf. */
  globalOptions?: Record<string, string>;
  /**
   * Mutual TLS (default off): a CA, server and client certificates made by the installed
   * `openrds-admin pki init/issue` in <dir>/pki; the agent's CN `agent-<stanza>` may serve the
   * stanza, the admin's CN `admin` may run admin commands.
   */
  tls?: boolean;
  /**
   * The backup host in a network namespace of its own: the repo-server runs there (`ip netns
   * exec`); with `address` it listens on that address and clients dial it across the veth.
   */
  serverNetns?: { name: string; address?: string };
}

/** Where a TLS stack keeps its certificates, and the CNs it issued. */
export interface StackPki {
  dir: string;
  agentCn: string;
  adminCn: string;
}

type Service = Awaited<ReturnType<typeof spawnService>>;

/**
 * One database host and one backup host on this machine, for a scenario: a real PostgreSQL
 * cluster archiving through a real openrds-agent to a real openrds-repo-server, run as a DBA would
 * (the agent and PostgreSQL as the postgres OS user, from the installed programs).
 */
export class Stack {
  server: Service | undefined;
  agent: Service | undefined;
  /** Extra environment of the repo-server (secrets such as OPENRDS_REPO1_CIPHER_PASS stay out of the shared config file). */
  serverEnv: Record<string, string> = {};
  /** Node flags for the agent daemon and the repo-server (e.g. --cpu-prof, which NODE_OPTIONS may not carry). */
  nodeFlags: { agent: string[]; server: string[] } = { agent: [], server: [] };
  private constructor(readonly dir: string, readonly conf: string, readonly stanza: string, readonly serverPort: number,
    readonly cluster: PgCluster, readonly pki: StackPki | undefined, readonly serverNetns?: string) {}

  static async create(opts: StackOptions): Promise<Stack> {
    const stanza = opts.stanza ?? 'e2e';
    const dir = await tmpDir('openrds-stack-');
    const pg = osUser('postgres');
    const run = path.join(dir, 'run');
    fs.mkdirSync(run, { mode: 0o755 });
    fs.mkdirSync(path.join(dir, 'repo'));
    fs.chownSync(run, pg.uid, pg.gid);
    const serverPort = await freePort();
    const conf = path.join(dir, 'openrds.conf');
    const cluster = await PgCluster.create({
      version: opts.version, dataChecksums: opts.dataChecksums ?? true,
      archiveCommand: `${installedBin('openrds-agent')} archive-push %p --stanza=${stanza} --config=${conf}`,
    });
    const remote = opts.serverNetns?.address;
    const pki = opts.tls ? await Stack.pkiCreate(dir, stanza, remote ? [remote] : []) : undefined;
    const global: Record<string, string> = {
      'repo1-path': path.join(dir, 'repo'), 'tls-server-address': '127.0.0.1', 'tls-server-port': String(serverPort),
      'repo-host': '127.0.0.1', 'repo-host-port': String(serverPort), 'agent-socket-path': path.join(run, 'agent.sock'),
      'log-level-console': 'detail', 'archive-timeout': '30', 'lock-path': path.join(dir, 'lock'), ...opts.globalOptions,
    };
    const sections: string[] = [];
    if (pki) {
      Object.assign(global, {
        'tls-server-cert-file': `${pki.dir}/server.crt`, 'tls-server-key-file': `${pki.dir}/server.key`, 'tls-server-ca-file': `${pki.dir}/ca.crt`,
        'tls-server-auth': `${pki.agentCn}=${stanza}`, 'tls-server-admin': pki.adminCn,
        // openrds-admin (root) presents the admin certificate; the agent's commands their own.
        'repo-host': remote ?? 'localhost', 'repo-host-ca-file': `${pki.dir}/ca.crt`,
        'repo-host-cert-file': `${pki.dir}/${pki.adminCn}.crt`, 'repo-host-key-file': `${pki.dir}/${pki.adminCn}.key`,
      });
      for (const command of ['agent', 'archive-push', 'archive-get']) {
        sections.push(`[global:${command}]`, `repo-host-cert-file=${pki.dir}/${pki.agentCn}.crt`, `repo-host-key-file=${pki.dir}/${pki.agentCn}.key`, '');
      }
    }
    if (remote) Object.assign(global, { 'tls-server-address': remote, 'repo-host': remote });
    Object.assign(global, opts.globalOptions);
    const text = ['[global]', ...Object.entries(global).map(([k, v]) => `${k}=${v}`), '', ...sections,
      `[${stanza}]`, `pg1-path=${cluster.dataDir}`, `pg1-port=${cluster.port}`, `pg1-socket-path=${cluster.socketDir}`, ''].join('\n');
    fs.writeFileSync(conf, text, { mode: 0o644 });
    return new Stack(dir, conf, stanza, serverPort, cluster, pki, opts.serverNetns?.name);
  }

  /** A CA and certificates made with the installed openrds-admin; the agent's files owned by postgres. */
  private static async pkiCreate(dir: string, stanza: string, hosts: string[]): Promise<StackPki> {
    const pki: StackPki = { dir: path.join(dir, 'pki'), agentCn: `agent-${stanza}`, adminCn: 'admin' };
    const admin = installedBin('openrds-admin');
    await runOk(admin, ['pki', 'init', `--pki-path=${pki.dir}`, '--no-config', ...(hosts.length ? ['--host=localhost', '--host=127.0.0.1', ...hosts.map((h) => `--host=${h}`)] : [])]);
    await runOk(admin, ['pki', 'issue', `--cn=${pki.agentCn}`, `--pki-path=${pki.dir}`, '--no-config']);
    await runOk(admin, ['pki', 'issue', `--cn=${pki.adminCn}`, `--pki-path=${pki.dir}`, '--no-config']);
    const pg = osUser('postgres');
    // postgres runs the agent and archive_command: it must reach and own its key (0600).
    fs.chmodSync(pki.dir, 0o755);
    for (const f of [`${pki.agentCn}.crt`, `${pki.agentCn}.key`]) fs.chownSync(path.join(pki.dir, f), pg.uid, pg.gid);
    return pki;
  }

  /** Starts (or restarts) the repo-server; once an agent runs, waits until it has reconnected. */
  async startServer(): Promise<void> {
    const logFile = path.join(this.dir, 'repo-server.log');
    const offset = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
    const server = withNodeFlags('openrds-repo-server', this.nodeFlags.server, [`--config=${this.conf}`]);
    this.server = await spawnService({
      ...(this.serverNetns ? { cmd: 'ip', args: ['netns', 'exec', this.serverNetns, server.cmd, ...server.args] } : server),
      env: { ...process.env, ...this.serverEnv }, logFile,
      readyWhen: async () => fs.readFileSync(logFile).subarray(offset).toString().includes('listening on')
        && (!this.agent || (await this.admin(['agents'])).stdout.includes(`stanza ${this.stanza}`)),
      timeoutMs: 30_000,
    });
  }

  async startAgent(): Promise<void> {
    const pg = osUser('postgres');
    this.agent = await spawnService({
      ...withNodeFlags('openrds-agent', this.nodeFlags.agent, ['serve', `--stanza=${this.stanza}`, `--config=${this.conf}`]), env: process.env,
      uid: pg.uid, gid: pg.gid, logFile: path.join(this.dir, 'agent.log'),
      readyWhen: async () => (await this.admin(['agents'])).stdout.includes(`stanza ${this.stanza}`),
      timeoutMs: 20_000,
    });
  }

  /**
   * Runs `during` while a full backup surely runs: archiving is slowed down (the backup waits for
   * its WAL), and `during` starts once the backup has passed pg_backup_start.
   */
  async duringBackup<T>(during: () => Promise<T>): Promise<{ backup: { code: number; stdout: string; stderr: string }; during: T }> {
    const archiveCommand = (await this.cluster.query<{ archive_command: string }>('SHOW archive_command'))[0]?.archive_command;
    // A wrong column here once made it 'sleep 4 && undefined': exit 127 stops PostgreSQL's
    // archiver, which its postmaster restarts only up to a minute later (a flaky 30 s wait).
    if (!archiveCommand || archiveCommand === '(disabled)') throw new Error(`archive_command is not set: '${archiveCommand}'`);
    await this.cluster.query(`ALTER SYSTEM SET archive_command = '${`sleep 4 && ${archiveCommand}`.replace(/'/g, "''")}'`);
    await this.cluster.query('SELECT pg_reload_conf()');
    const log = path.join(this.dir, 'repo-server.log');
    const logStart = fs.statSync(log).size;
    let running;
    let value: T;
    try {
      running = this.admin(['backup', `--stanza=${this.stanza}`, '--type=full', '--start-fast']);
      const until = Date.now() + 60_000;
      while (!fs.readFileSync(log).subarray(logStart).toString().includes('backup start archive')) {
        if (Date.now() > until) throw new Error('the backup did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
      value = await during();
    } finally {
      // Archiving at full speed again, so that the backup gets its WAL in time.
      await this.cluster.query('ALTER SYSTEM RESET archive_command');
      await this.cluster.query('SELECT pg_reload_conf()');
    }
    return { backup: await running, during: value };
  }

  /** Starts the cluster, the repo-server and the agent. */
  async start(): Promise<void> {
    await this.cluster.start();
    await this.startServer();
    await this.startAgent();
  }

  /** Runs openrds-admin with the stack's config; never throws on a non-zero exit. */
  async admin(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCommand(installedBin('openrds-admin'), [...args, `--config=${this.conf}`], { env: { ...process.env, ...opts.env }, timeoutMs: opts.timeoutMs ?? 240_000 });
  }

  /** openrds-admin that must succeed; its stdout. */
  async adminOk(args: string[]): Promise<string> {
    const r = await this.admin(args);
    if (r.code !== 0) throw new Error(`openrds-admin ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  /** Runs openrds-agent as postgres (archive-push / archive-get, as PostgreSQL would). */
  async agentCommand(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const pg = osUser('postgres');
    return runCommand(installedBin('openrds-agent'), [...args, `--stanza=${this.stanza}`, `--config=${this.conf}`],
      { env: process.env, uid: pg.uid, gid: pg.gid, timeoutMs: 120_000, ...(cwd ? { cwd } : {}) });
  }

  /** A directory owned by postgres for a restore target (it must not exist yet: restore creates it). */
  restoreDir(name: string): string {
    const parent = path.join(this.dir, 'restores');
    const pg = osUser('postgres');
    fs.mkdirSync(parent, { recursive: true, mode: 0o755 });
    fs.chownSync(parent, pg.uid, pg.gid);
    return path.join(parent, name);
  }

  async destroy(): Promise<void> {
    await this.agent?.stop('SIGTERM').catch(() => undefined);
    await this.server?.stop('SIGTERM').catch(() => undefined);
    await this.cluster.destroy().catch(() => undefined);
    if (!process.env.OPENRDS_E2E_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
