import { ConfigError } from '../error';
import { PosixStorage } from './posix';
import type { AzureStorageOptions } from './azure';
import type { S3StorageOptions } from './s3';
import type { Storage } from './storage';

export interface RepoStorageOptions {
  type: string;
  path: string;
  /** repoN-s3-* (type s3). */
  s3?: Omit<S3StorageOptions, 'path'>;
  /** repoN-azure-* (type azure). */
  azure?: Omit<AzureStorageOptions, 'path'>;
}

/**
 * The storage driver of a repository by its type. Object-store SDKs are loaded only when a
 * repository uses them: the agent's short-lived commands never pay for them.
 */
export function storageRepoNew(opts: RepoStorageOptions): Storage {
  if (opts.type === 'posix') return new PosixStorage({ path: opts.path });
  if (opts.type === 's3') {
    if (!opts.s3) throw new ConfigError('an s3 repository needs its repo1-s3-* options', { hint: 'set repo1-s3-bucket, repo1-s3-region, repo1-s3-endpoint, repo1-s3-key, repo1-s3-key-secret' });
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand (see above)
    const { S3Storage } = require('./s3') as typeof import('./s3');
    return new S3Storage({ ...opts.s3, path: opts.path });
  }
  if (opts.type === 'azure') {
    if (!opts.azure) throw new ConfigError('an azure repository needs its repo1-azure-* options', { hint: 'set repo1-azure-account, repo1-azure-container, repo1-azure-key' });
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand (see above)
    const { AzureStorage } = require('./azure') as typeof import('./azure');
    return new AzureStorage({ ...opts.azure, path: opts.path });
  }
  throw new ConfigError(`invalid repo type '${opts.type}'`, { hint: 'use repo1-type=posix, s3 or azure' });
}
