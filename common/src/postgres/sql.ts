import { FormatError } from '../error';
import { pgVersionInfo } from './version';

/**
 * A string as a SQL literal, safe whatever standard_conforming_strings is: quotes are doubled,
 * and a string with a backslash becomes an E'' literal with the backslashes doubled.
 */
export function sqlQuote(text: string): string {
  if (text.includes('\0')) throw new FormatError('a SQL string cannot contain a NUL character');
  const quoted = text.replace(/'/g, "''");
  return text.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

/**
 * The SQL openrds runs on a cluster of one major version. Result columns are aliased to stable
 * lower-case names; LSNs come back as pg_lsn text ('0/1A000028').
 */
export interface PgSql {
  /** Run when a session opens (application_name is set at connect, or with sessionSetupFor). */
  sessionSetup: string[];
  /** sessionSetup, plus the application_name the session shows in pg_stat_activity. */
  sessionSetupFor(applicationName: string): string[];
  /** Starts a non-exclusive backup. Columns: lsn, wal_file. */
  backupStart(label: string, fast: boolean): string;
  /** Stops the backup of this session, without waiting for archiving. Columns: lsn, wal_file, label_file, spcmap_file. */
  backupStop: string;
  /** The current WAL insert position. Columns: lsn, wal_file. */
  currentWal: string;
  /** Switches to a new WAL segment. Columns: lsn, wal_file (the segment just completed). */
  switchWal: string;
  /** Column: lsn. */
  createRestorePoint(name: string): string;
  /** Columns: server_version_num (int), data_directory, archive_mode, archive_command, checkpoint_timeout (seconds). */
  settings: string;
  /** Column: in_recovery (boolean). */
  isInRecovery: string;
  /** Columns: name, oid (int8), last_sys_oid (int8; NULL from PostgreSQL 15, which dropped datlastsysoid). */
  databaseList: string;
  /** Columns: oid (int8), name, location ('' for pg_default and pg_global). */
  tablespaceList: string;
  /** Column: time_ms (int8, milliseconds since the epoch by the database host's clock). */
  currentTimeMs: string;
}

/** The spellings that changed between versions; each row holds from its `from` up to the next row's. */
interface PgSqlVersioned {
  from: number;
  backupStart: (label: string, fast: boolean) => string;
  backupStopFunction: string;
  lastSysOid: string;
}

const PG_SQL_BY_VERSION: readonly PgSqlVersioned[] = [
  {
    from: 15,
    // Exclusive backups are gone in 15: the functions were renamed and lost the exclusive flag.
    backupStart: (label, fast) => `SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_backup_start(${sqlQuote(label)}, ${fast}) AS lsn`,
    backupStopFunction: 'pg_backup_stop(false)',
    lastSysOid: 'NULL::int8',
  },
  {
    from: 10,
    // The third argument false makes it non-exclusive; the second of stop (10+) skips waiting for archiving.
    backupStart: (label, fast) => `SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_start_backup(${sqlQuote(label)}, ${fast}, false) AS lsn`,
    backupStopFunction: 'pg_stop_backup(false, false)',
    lastSysOid: 'datlastsysoid::int8',
  },
];

// pg_stop_backup/pg_backup_stop must not run in a parallel worker (9.6 errors), and every name
// must resolve in pg_catalog whatever the user's search_path holds.
const SESSION_SETUP: readonly string[] = [
  "SET search_path = 'pg_catalog'",
  "SET client_encoding = 'UTF8'",
  'SET max_parallel_workers_per_gather = 0',
];

/** The SQL openrds runs on a cluster of the given major; throws PgVersionUnsupportedError. */
export function pgSql(version: number): PgSql {
  pgVersionInfo(version);
  const v = PG_SQL_BY_VERSION.find((row) => version >= row.from)!;
  return {
    sessionSetup: [...SESSION_SETUP],
    sessionSetupFor: (applicationName) => [...SESSION_SETUP, `SET application_name = ${sqlQuote(applicationName)}`],
    backupStart: v.backupStart,
    backupStop: `SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file, labelfile AS label_file, spcmapfile AS spcmap_file FROM ${v.backupStopFunction}`,
    currentWal: 'SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_current_wal_insert_lsn() AS lsn',
    // pg_walfile_name maps an LSN on a segment boundary to the segment before: the one completed.
    switchWal: 'SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_switch_wal() AS lsn',
    createRestorePoint: (name) => `SELECT pg_create_restore_point(${sqlQuote(name)})::text AS lsn`,
    settings: 'SELECT current_setting(\'server_version_num\')::int AS server_version_num, '
      + 'current_setting(\'data_directory\') AS data_directory, current_setting(\'archive_mode\') AS archive_mode, '
      + 'current_setting(\'archive_command\') AS archive_command, '
      + 'extract(epoch FROM current_setting(\'checkpoint_timeout\')::interval)::int AS checkpoint_timeout',
    isInRecovery: 'SELECT pg_is_in_recovery() AS in_recovery',
    databaseList: `SELECT datname AS name, oid::int8 AS oid, ${v.lastSysOid} AS last_sys_oid FROM pg_database ORDER BY oid`,
    tablespaceList: 'SELECT oid::int8 AS oid, spcname AS name, pg_tablespace_location(oid) AS location FROM pg_tablespace ORDER BY oid',
    // floor: a rounded-up millisecond would be in the future of the clock it reports.
    currentTimeMs: 'SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8 AS time_ms',
  };
}
