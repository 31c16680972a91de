import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { PG_TOOLS, pgBinDir } from './pg-versions';
import { freePort, osUser, runOk, tmpDir } from './processes';

export interface PgClusterOptions {
  version: number;
  dataChecksums?: boolean;
  port?: number;
  walSegSizeMb?: number;
  initdbArgs?: string[];
  archiveCommand?: string;
  settings?: Record<string, string>;
}

/**
 * A real PostgreSQL cluster for a test, run as the postgres OS user in its own temp directory,
 * reached over a unix socket in that directory.
 */
export class PgCluster {
  private constructor(readonly version: number, readonly dir: string, readonly dataDir: string, readonly socketDir: string,
    readonly port: number, private readonly ownsDir: boolean) {}

  /** A temp directory owned by postgres with a short socket directory inside (socket paths are limited to ~107 bytes). */
  private static async dirs(prefix: string): Promise<{ dir: string; socketDir: string }> {
    const pg = osUser('postgres');
    const dir = await tmpDir(prefix);
    const socketDir = path.join(dir, 's');
    fs.mkdirSync(socketDir, { mode: 0o755 });
    fs.chownSync(socketDir, pg.uid, pg.gid);
    fs.chownSync(dir, pg.uid, pg.gid);
    return { dir, socketDir };
  }

  static async create(opts: PgClusterOptions): Promise<PgCluster> {
    const pg = osUser('postgres');
    const { dir, socketDir } = await PgCluster.dirs('openrds-pg-');
    const dataDir = path.join(dir, 'data');
    const bin = pgBinDir(opts.version);
    await runOk(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C',
      ...(opts.dataChecksums ?? true ? ['--data-checksums'] : []),
      ...(opts.walSegSizeMb ? [`--wal-segsize=${opts.walSegSizeMb}`] : []), ...(opts.initdbArgs ?? [])],
      { uid: pg.uid, gid: pg.gid, cwd: dir });
    const port = opts.port ?? await freePort();
    const settings: Record<string, string> = {
      port: String(port), listen_addresses: "''", unix_socket_directories: `'${socketDir}'`, wal_level: 'replica',
      archive_mode: 'on', archive_command: `'${(opts.archiveCommand ?? 'true').replace(/'/g, "''")}'`, max_wal_senders: '2',
      fsync: 'on', logging_collector: 'off', ...opts.settings,
    };
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n# openrds e2e\n${Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
    return new PgCluster(opts.version, dir, dataDir, socketDir, port, true);
  }

  /** A cluster around an existing data directory (a restore): started on a new port, same socket rules. */
  static async fromExistingDataDir(dataDir: string, opts: { version: number; port?: number }): Promise<PgCluster> {
    const { dir, socketDir } = await PgCluster.dirs('openrds-pgr-');
    const port = opts.port ?? await freePort();
    return new PgCluster(opts.version, dir, dataDir, socketDir, port, false);
  }

  get logFile(): string { return path.join(this.dir, 'postgres.log'); }

  private pgCtl(args: string[]): Promise<string> {
    const pg = osUser('postgres');
    return runOk(path.join(pgBinDir(this.version), 'pg_ctl'), ['-D', this.dataDir, ...args], { uid: pg.uid, gid: pg.gid, cwd: this.dir, timeoutMs: 180_000 });
  }

  async start(): Promise<void> {
    await this.pgCtl(['-l', this.logFile, '-w', '-t', '150', '-o', `-p ${this.port} -k ${this.socketDir} -c listen_addresses=''`, 'start'])
      .catch(async (err: Error) => { throw new Error(`${err.message}\nlog:\n${await this.logTail()}`); });
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (this.isRunning()) await this.pgCtl(['-m', mode, '-w', 'stop']);
  }

  /** Waits until recovery has ended (a restored cluster promoted); fails with the log if it does not. */
  async waitPromoted(timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((await this.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r) {
      if (Date.now() > until) throw new Error(`cluster '${this.dataDir}' is still in recovery after ${timeoutMs} ms:\n${await this.logTail()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  isRunning(): boolean {
    return fs.existsSync(path.join(this.dataDir, 'postmaster.pid'));
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<(T & Record<string, any>)[]> {
    const client = new Client({ host: this.socketDir, port: this.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  /**
   * pg_dumpall of the whole cluster (Debian's 15 client works against 13..18), without the random
   * \\restrict keys that pg_dump writes since 15.14, so that two dumps of equal data are equal.
   */
  async dumpAll(): Promise<string> {
    const pg = osUser('postgres');
    const out = await runOk(path.join(PG_TOOLS, 'pg_dumpall'), ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '--no-sync'],
      { uid: pg.uid, gid: pg.gid, cwd: this.dir, timeoutMs: 300_000 });
    return out.split('\n').filter((l) => !/^\\(un)?restrict /.test(l)).join('\n');
  }

  async pgbench(args: string[]): Promise<string> {
    const pg = osUser('postgres');
    return runOk(path.join(PG_TOOLS, 'pgbench'), ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', ...args, 'postgres'],
      { uid: pg.uid, gid: pg.gid, cwd: this.dir, timeoutMs: 600_000 });
  }

  async logTail(lines = 40): Promise<string> {
    if (!fs.existsSync(this.logFile)) return '(no log)';
    return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    if (process.env.OPENRDS_E2E_KEEP) return;
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (!this.ownsDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
