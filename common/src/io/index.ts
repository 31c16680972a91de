export * from './checksum';
export * from './filter';
export * from './zstd';
export * from './lz4';
export * from './compress';
export * from './filter-pool';
export * from './cipher';
