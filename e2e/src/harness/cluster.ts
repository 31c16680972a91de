import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { PG_TOOLS, pgBinDir } from './pg-versions';
import { freePort, osUser, runOk, tmpDir } from './processes';

export interface PgClusterOptions {
  version: number;
  /** initdb --data-checksums (default true). */
  dataChecksums?: boolean;
  /** Default: a free one. Only names the socket file: the cluster listens on no TCP address. */
  port?: number;
  walSegSizeMb?: number;
  initdbArgs?: string[];
  /** archive_command (default 'true': archived and dropped). */
  archiveCommand?: string;
  /** Extra postgresql.conf lines, values as written there (quote strings: `{ work_mem: "'8MB'" }`). */
  settings?: Record<string, string>;
}

export type StopMode = 'smart' | 'fast' | 'immediate';

/**
 * A real PostgreSQL cluster for a test, run as the postgres OS user in its own temp directory
 * (data/, s/ = the unix socket directory, postgres.log), reached over the unix socket only.
 */
export class PgCluster {
  private constructor(readonly version: number, readonly dir: string, readonly dataDir: string, readonly socketDir: string,
    readonly port: number, private readonly ownsDataDir: boolean) {}

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

  /** initdb as postgres into a new temp directory; the cluster archives with options.archiveCommand. */
  static async create(opts: PgClusterOptions): Promise<PgCluster> {
    const pg = osUser('postgres');
    const bin = pgBinDir(opts.version);
    const { dir, socketDir } = await PgCluster.dirs('openrds-pg-');
    const dataDir = path.join(dir, 'data');
    try {
      await runOk(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C',
        ...(opts.dataChecksums ?? true ? ['--data-checksums'] : []),
        ...(opts.walSegSizeMb ? [`--wal-segsize=${opts.walSegSizeMb}`] : []), ...(opts.initdbArgs ?? [])],
      { uid: pg.uid, gid: pg.gid, cwd: dir, timeoutMs: 180_000 });
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const port = opts.port ?? await freePort();
    const settings: Record<string, string> = {
      port: String(port), listen_addresses: "''", unix_socket_directories: quote(socketDir), wal_level: 'replica',
      archive_mode: 'on', archive_command: quote(opts.archiveCommand ?? 'true'), max_wal_senders: '2',
      fsync: 'on', logging_collector: 'off', ...opts.settings,
    };
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n# openrds e2e\n${lines.join('\n')}\n`);
    return new PgCluster(opts.version, dir, dataDir, socketDir, port, true);
  }

  /**
   * A cluster around an existing data directory (a restore, owned by postgres, mode 700): started
   * on a new port with its own socket directory and log. destroy() removes the data directory too.
   */
  static async fromExistingDataDir(dataDir: string, opts: { version: number; port?: number }): Promise<PgCluster> {
    pgBinDir(opts.version);
    const { dir, socketDir } = await PgCluster.dirs('openrds-pgr-');
    const port = opts.port ?? await freePort();
    return new PgCluster(opts.version, dir, dataDir, socketDir, port, false);
  }

  get logFile(): string { return path.join(this.dir, 'postgres.log'); }

  private pgCtl(args: string[]): Promise<string> {
    const pg = osUser('postgres');
    return runOk(path.join(pgBinDir(this.version), 'pg_ctl'), ['-D', this.dataDir, ...args], { uid: pg.uid, gid: pg.gid, cwd: this.dir, timeoutMs: 180_000 });
  }

  /** pg_ctl start -w; fails with the server log when the server does not come up. */
  async start(): Promise<void> {
    this.checkDataDirOwnership();
    await this.pgCtl(['-l', this.logFile, '-w', '-t', '150', '-o', `-p ${this.port} -k ${this.socketDir} -c listen_addresses=''`, 'start'])
      .catch(async (err: Error) => { throw new Error(`${err.message}\nlog (${this.logFile}):\n${await this.logTail()}`); });
  }

  /** pg_ctl stop -w (fast by default); nothing when the server is not running. */
  async stop(mode: StopMode | { mode?: StopMode } = 'fast'): Promise<void> {
    const m = typeof mode === 'string' ? mode : mode.mode ?? 'fast';
    if (this.isRunning()) await this.pgCtl(['-m', m, '-w', '-t', '150', 'stop']);
  }

  /** Waits until recovery has ended (a restored cluster promoted); fails with the log if it does not. */
  async waitPromoted(timeoutMs = 60_000, pollMs = 250): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((await this.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r) {
      if (Date.now() > until) throw new Error(`cluster '${this.dataDir}' is still in recovery after ${timeoutMs} ms:\n${await this.logTail()}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Whether the postmaster of postmaster.pid is alive (a crash leaves a stale file behind). */
  isRunning(): boolean {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return false;
    }
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }

  /** Runs one statement over the unix socket as user postgres and returns its rows. */
  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<(T & Record<string, any>)[]> {
    const client = new Client({ host: this.socketDir, port: this.port, user: 'postgres', database });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** Debian's psql 15 (works against 13..18) with the given arguments, as postgres; returns stdout. */
  async psql(args: string[], opts: { database?: string; input?: string } = {}): Promise<string> {
    const pg = osUser('postgres');
    return runOk(path.join(PG_TOOLS, 'psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', String(this.port),
      '-U', 'postgres', '-d', opts.database ?? 'postgres', ...args], { uid: pg.uid, gid: pg.gid, cwd: this.dir, input: opts.input, timeoutMs: 600_000 });
  }

  /**
   * pg_dumpall of the whole cluster, without the random \\restrict keys that pg_dump writes since
   * 15.14, so that two dumps of equal data are equal. Debian's pg_dumpall 15 refuses servers newer
   * than 15: on 16+ use dataDigest().
   */
  async dumpAll(): Promise<string> {
    if (this.version > 15) {
      throw new Error(`dumpAll: pg_dumpall 15 refuses PostgreSQL ${this.version} servers (only 15 or older): compare dataDigest() instead`);
    }
    const pg = osUser('postgres');
    const out = await runOk(path.join(PG_TOOLS, 'pg_dumpall'), ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '--no-sync'],
      { uid: pg.uid, gid: pg.gid, cwd: this.dir, timeoutMs: 300_000 });
    return out.split('\n').filter((l) => !/^\\(un)?restrict /.test(l)).join('\n');
  }

  /**
   * The user data of every database as sorted lines, on any version: per permanent table its row
   * count and an md5 over the md5 of every row (independent of row order). Two clusters with equal
   * data give equal text. Unlogged tables (empty after a restore) and sequences (WAL-logged ahead,
   * so a restore's are further on) are left out.
   */
  async dataDigest(): Promise<string> {
    const lines: string[] = [];
    const databases = await this.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname');
    for (const { datname } of databases) {
      const tables = await this.query<{ name: string }>(`SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND c.relpersistence = 'p'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' ORDER BY 1`, [], datname);
      for (const { name } of tables) {
        const [row] = await this.query<{ n: string; h: string }>(
          `SELECT count(*) AS n, md5(coalesce(string_agg(m, '' ORDER BY m), '')) AS h FROM (SELECT md5(t::text) AS m FROM ${name} t) r`, [], datname);
        lines.push(`${datname} table ${name} rows=${row!.n} md5=${row!.h}`);
      }
    }
    return lines.join('\n');
  }

  /** Debian's pgbench 15 (works against 13..18) on database postgres, as postgres; returns stdout. */
  async pgbench(args: string[]): Promise<string> {
    const pg = osUser('postgres');
    return runOk(path.join(PG_TOOLS, 'pgbench'), ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', ...args, 'postgres'],
      { uid: pg.uid, gid: pg.gid, cwd: this.dir, timeoutMs: 600_000 });
  }

  /** The last lines of the server log. */
  async logTail(lines = 40): Promise<string> {
    if (!fs.existsSync(this.logFile)) return '(no log)';
    return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  /** Stops the server (immediate) and removes its directories; OPENRDS_E2E_KEEP=1 keeps them for a look. */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    if (process.env.OPENRDS_E2E_KEEP) return;
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (!this.ownsDataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** PostgreSQL refuses a data directory it does not own or that others can read: say so plainly. */
  private checkDataDirOwnership(): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.dataDir);
    } catch {
      throw new Error(`data directory '${this.dataDir}' does not exist`);
    }
    const pg = osUser('postgres');
    const mode = st.mode & 0o777;
    if (st.uid !== pg.uid || (mode !== 0o700 && mode !== 0o750)) {
      throw new Error(`data directory '${this.dataDir}' is owned by uid ${st.uid} with mode ${mode.toString(8)}: ` +
        `PostgreSQL needs it owned by postgres (uid ${pg.uid}) with mode 700 (or 750)`);
    }
  }
}

/** A postgresql.conf string literal. */
function quote(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
