// PostgreSQL knowledge, keyed by major version: pg_control, WAL names and headers, SQL, PGDATA rules.
export * from './crc32c';
export * from './version';
export * from './pg-control';
export * from './wal';
export * from './sql';
export * from './exclusions';
