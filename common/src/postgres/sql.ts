/** A string as a SQL literal. */
export function sqlQuote(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

export interface PgSql {
  /** Statements run when a session opens. */
  sessionSetup: string[];
  /** Columns: lsn, wal_file. */
  backupStart(label: string, fast: boolean): string;
  /** Columns: lsn, label_file, spcmap_file. */
  backupStop: string;
  /** Column: wal_file (the segment that was just completed). */
  switchWal: string;
  /** Columns: lsn, wal_file of the current insert position. */
  currentWal: string;
  createRestorePoint(name: string): string;
  /** Columns: server_version_num, data_directory, archive_mode, archive_command, checkpoint_timeout. */
  settings: string;
  /** Column: in_recovery. */
  isInRecovery: string;
  /** Columns: name, oid. */
  databaseList: string;
  /** Columns: oid, name, location. */
  tablespaceList: string;
  /** Column: time_ms (the database host's clock). */
  currentTimeMs: string;
}

/** Backup start/stop SQL: the non-exclusive API in the spelling of each version. */
const backupApi: { from: number; start: (label: string, fast: boolean) => string; stop: string }[] = [
  {
    from: 15,
    start: (label, fast) => `SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_backup_start(${sqlQuote(label)}, ${fast}) AS lsn`,
    stop: 'SELECT lsn::text AS lsn, labelfile AS label_file, spcmapfile AS spcmap_file FROM pg_backup_stop(false)',
  },
  {
    from: 10,
    start: (label, fast) => `SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_start_backup(${sqlQuote(label)}, ${fast}, false) AS lsn`,
    stop: 'SELECT lsn::text AS lsn, labelfile AS label_file, spcmapfile AS spcmap_file FROM pg_stop_backup(false, false)',
  },
];

/** The SQL openrds runs on a cluster of the given major version. */
export function pgSql(version: number): PgSql {
  const api = backupApi.find((a) => version >= a.from)!;
  return {
    sessionSetup: [
      "SET search_path = 'pg_catalog'",
      "SET client_encoding = 'UTF8'",
      // pg_stop_backup must not run in a parallel worker.
      'SET max_parallel_workers_per_gather = 0',
    ],
    backupStart: api.start,
    backupStop: api.stop,
    switchWal: 'SELECT pg_walfile_name(pg_switch_wal()) AS wal_file',
    currentWal: 'SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_insert_lsn()) AS wal_file',
    createRestorePoint: (name) => `SELECT pg_create_restore_point(${sqlQuote(name)})::text AS lsn`,
    settings: "SELECT current_setting('server_version_num')::int AS server_version_num, current_setting('data_directory') AS data_directory, "
      + "current_setting('archive_mode') AS archive_mode, current_setting('archive_command') AS archive_command, "
      + "current_setting('checkpoint_timeout') AS checkpoint_timeout",
    isInRecovery: 'SELECT pg_is_in_recovery() AS in_recovery',
    databaseList: 'SELECT datname AS name, oid::int8 AS oid FROM pg_database ORDER BY oid',
    tablespaceList: 'SELECT oid::int8 AS oid, spcname AS name, pg_tablespace_location(oid) AS location FROM pg_tablespace ORDER BY oid',
    currentTimeMs: 'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS time_ms',
  };
}
