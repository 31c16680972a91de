export * from './filter';
export * from './zstd';
export * from './compress';
