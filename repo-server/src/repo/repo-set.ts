import { type CipherType, type Config, OptionInvalidError, REPO_MAX, storageRepoNew } from '@openrds/common';
import { ArchiveStore } from '../command/archive/archive-store';
import { RepoCipher } from './cipher';
import { Repo } from './repo';

/** One repository of the repo-server and its WAL archive. */
export interface RepoHandle {
  repo: Repo;
  archive: ArchiveStore;
}

/**
 * The repositories a configuration names, in order: repo1 always (its path has a default),
 * repo2..repo4 when their path or type is set. archive-push stores to all of them, archive-get
 * and restore search them in this order.
 */
export function repoKeysConfigured(config: Config): number[] {
  const keys = [1];
  const set = (name: string): boolean => ['config', 'env', 'command-line'].includes(config.source(name));
  for (let n = 2; n <= REPO_MAX; n++) if (set(`repo${n}-path`) || set(`repo${n}-type`)) keys.push(n);
  return keys;
}

/** Opens every configured repository (storage, encryption, archive). */
export function repoSetOpen(config: Config): RepoHandle[] {
  return repoKeysConfigured(config).map((n) => {
    const type = config.str(`repo${n}-type`);
    const path = config.strOpt(`repo${n}-path`);
    if (path === undefined) throw new OptionInvalidError(`repo${n}-type is set but repo${n}-path is not`, { hint: `set repo${n}-path` });
    const s3 = type === 's3' ? {
      bucket: config.strOpt(`repo${n}-s3-bucket`) ?? '', region: config.str(`repo${n}-s3-region`),
      uriStyle: config.str(`repo${n}-s3-uri-style`) as 'host' | 'path', keyType: config.str(`repo${n}-s3-key-type`) as 'shared' | 'auto',
      verifyTls: config.bool(`repo${n}-s3-verify-tls`),
      ...(config.strOpt(`repo${n}-s3-endpoint`) ? { endpoint: config.str(`repo${n}-s3-endpoint`) } : {}),
      ...(config.strOpt(`repo${n}-s3-key`) ? { key: config.str(`repo${n}-s3-key`) } : {}),
      ...(config.strOpt(`repo${n}-s3-key-secret`) ? { keySecret: config.str(`repo${n}-s3-key-secret`) } : {}),
    } : undefined;
    const azure = type === 'azure' ? {
      account: config.strOpt(`repo${n}-azure-account`) ?? '', container: config.strOpt(`repo${n}-azure-container`) ?? '',
      keyType: config.str(`repo${n}-azure-key-type`) as 'shared' | 'sas', key: config.strOpt(`repo${n}-azure-key`) ?? '',
      ...(config.strOpt(`repo${n}-azure-endpoint`) ? { endpoint: config.str(`repo${n}-azure-endpoint`) } : {}),
    } : undefined;
    const storage = storageRepoNew({ type, path, ...(s3 ? { s3 } : {}), ...(azure ? { azure } : {}) });
    const repo = new Repo(storage, new RepoCipher(storage, config.str(`repo${n}-cipher-type`) as CipherType, config.strOpt(`repo${n}-cipher-pass`), n));
    return { repo, archive: new ArchiveStore(repo) };
  });
}

/** The repository a command's --repo names (repo1 without it). */
export function repoSelect(repos: readonly RepoHandle[], config: Config): RepoHandle {
  const key = (config.get('repo') as number | undefined) ?? 1;
  const found = repos.find((h) => h.repo.key === key);
  if (!found) {
    throw new OptionInvalidError(`repo${key} is not configured on the repo-server`,
      { hint: `configured: ${repos.map((h) => `repo${h.repo.key}`).join(', ')}; set repo${key}-path in the repo-server's configuration` });
  }
  return found;
}

/** The repositories a command acts on: the one --repo names, or all of them. */
export function reposSelected(repos: readonly RepoHandle[], config: Config): readonly RepoHandle[] {
  return config.get('repo') === undefined ? repos : [repoSelect(repos, config)];
}
