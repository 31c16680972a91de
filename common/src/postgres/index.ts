export * from './crc32c';
export * from './version';
export * from './pg-control';
export * from './wal';
export * from './sql';
export * from './exclusions';
