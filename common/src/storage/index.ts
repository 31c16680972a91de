export * from './storage';
export * from './posix';
export * from './repo-storage';
export type { S3StorageOptions } from './s3';
export type { AzureStorageOptions } from './azure';
