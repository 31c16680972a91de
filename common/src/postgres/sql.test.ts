import { FormatError, PgVersionUnsupportedError } from '../error';
import { pgSql, sqlQuote } from './sql';

describe('sqlQuote', () => {
  it('doubles single quotes', () => {
    expect(sqlQuote("it's")).toBe("'it''s'");
    expect(sqlQuote('')).toBe("''");
  });

  it('uses an E literal with doubled backslashes when there is a backslash, whatever standard_conforming_strings is', () => {
    expect(sqlQuote("a\\'b")).toBe("E'a\\\\''b'");
  });

  it('refuses a NUL character, which no SQL string can hold', () => {
    expect(() => sqlQuote('a\0b')).toThrow(FormatError);
  });
});

describe('pgSql', () => {
  it('starts a non-exclusive backup with pg_start_backup before 15 and pg_backup_start from 15', () => {
    for (const v of [10, 11, 12, 13, 14]) {
      expect(pgSql(v).backupStart('20250101-000000F', true))
        .toBe("SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_start_backup('20250101-000000F', true, false) AS lsn");
    }
    for (const v of [15, 16, 17, 18]) {
      expect(pgSql(v).backupStart('20250101-000000F', false))
        .toBe("SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_backup_start('20250101-000000F', false) AS lsn");
    }
  });

  it('stops without waiting for archiving, returning the label and tablespace map', () => {
    expect(pgSql(14).backupStop).toContain('FROM pg_stop_backup(false, false)');
    expect(pgSql(15).backupStop).toContain('FROM pg_backup_stop(false)');
    for (const v of [10, 18]) {
      expect(pgSql(v).backupStop).toMatch(/^SELECT lsn::text AS lsn, pg_walfile_name\(lsn\) AS wal_file, labelfile AS label_file, spcmapfile AS spcmap_file FROM /);
    }
  });

  it('quotes labels and restore point names', () => {
    expect(pgSql(12).backupStart("x'); DROP TABLE t; --", true)).toContain("pg_start_backup('x''); DROP TABLE t; --', true, false)");
    expect(pgSql(16).createRestorePoint("a'b")).toBe("SELECT pg_create_restore_point('a''b')::text AS lsn");
  });

  it('sets up every session the same way, application_name when asked', () => {
    const setup = pgSql(13).sessionSetup;
    expect(setup).toEqual(["SET search_path = 'pg_catalog'", "SET client_encoding = 'UTF8'", 'SET max_parallel_workers_per_gather = 0']);
    expect(pgSql(13).sessionSetupFor("openrds backup 'x'")).toEqual([...setup, "SET application_name = 'openrds backup ''x'''"]);
  });

  it('lists databases with datlastsysoid before 15 and a NULL from 15, where the column is gone', () => {
    expect(pgSql(14).databaseList).toBe('SELECT datname AS name, oid::int8 AS oid, datlastsysoid::int8 AS last_sys_oid FROM pg_database ORDER BY oid');
    expect(pgSql(15).databaseList).toBe('SELECT datname AS name, oid::int8 AS oid, NULL::int8 AS last_sys_oid FROM pg_database ORDER BY oid');
  });

  it('names the WAL file of the insert position and of a switch', () => {
    expect(pgSql(10).currentWal).toBe('SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_current_wal_insert_lsn() AS lsn');
    expect(pgSql(18).switchWal).toBe('SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file FROM pg_switch_wal() AS lsn');
  });

  it('reads settings, recovery state, tablespaces and the server clock under stable column names', () => {
    const sql = pgSql(17);
    for (const column of ['server_version_num', 'data_directory', 'archive_mode', 'archive_command', 'checkpoint_timeout']) {
      expect(sql.settings).toContain(` AS ${column}`);
    }
    expect(sql.isInRecovery).toBe('SELECT pg_is_in_recovery() AS in_recovery');
    expect(sql.tablespaceList).toBe('SELECT oid::int8 AS oid, spcname AS name, pg_tablespace_location(oid) AS location FROM pg_tablespace ORDER BY oid');
    expect(sql.currentTimeMs).toBe('SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8 AS time_ms');
  });

  it('refuses a version it has no SQL for', () => {
    expect(() => pgSql(9)).toThrow(PgVersionUnsupportedError);
    expect(() => pgSql(19)).toThrow(PgVersionUnsupportedError);
  });
});
