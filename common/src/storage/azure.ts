import { randomBytes } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { BlobServiceClient, StorageSharedKeyCredential, type ContainerClient } from '@azure/storage-blob';
import { AssertError, FileMissingError, OpenrdsError, RepoUnavailableError } from '../error';
import { ObjectNames, partedWrite } from './object-store';
import type { Storage, StorageInfo, StorageListOptions, StorageReadOptions, StorageWriteOptions } from './storage';

export interface AzureStorageOptions {
  account: string;
  container: string;
  /** 'shared': the account key; 'sas': a shared access signature (the query string, without '?'). */
  keyType: 'shared' | 'sas';
  key: string;
  /** https://<account>.blob.core.windows.net when unset (azurite: http://127.0.0.1:10000/devstoreaccount1). */
  endpoint?: string;
  /** Prefix of every blob name (repo1-path). */
  path: string;
  /** Bytes per staged block (default 16 MiB). */
  blockSize?: number;
  blocksInFlight?: number;
  /** Tries per request (the SDK retries 5xx, 429 and timeouts with exponential backoff). */
  maxTries?: number;
}

const BLOCK_SIZE = 16 * 1024 * 1024;

interface RestErrorLike { statusCode?: number; code?: string; message?: string; details?: { errorCode?: string } }

function isMissing(err: unknown): boolean {
  const e = err as RestErrorLike;
  return e?.statusCode === 404 && (e.code ?? e.details?.errorCode) !== 'ContainerNotFound';
}

/**
 * An Azure Blob Storage repository (block blobs). A write stages blocks and commits them with
 * one Put Block List, the only moment the blob (or its new content) becomes visible; a write
 * destroyed before that commits nothing (uncommitted blocks are discarded by the service). Small
 * files are one Put Blob. Reads are ranged downloads; listings are hierarchical by '/'.
 */
export class AzureStorage implements Storage {
  readonly type = 'azure';
  private readonly container: ContainerClient;
  private readonly names: ObjectNames;
  private readonly blockSize: number;

  constructor(private readonly opts: AzureStorageOptions) {
    if (!opts.account || !opts.container) throw new RepoUnavailableError('an azure repository needs an account and a container', { hint: 'set repo1-azure-account and repo1-azure-container' });
    if (!opts.key) throw new RepoUnavailableError('an azure repository needs repo1-azure-key', { hint: 'set it in a 0600 configuration file or OPENRDS_REPO1_AZURE_KEY' });
    this.names = new ObjectNames(opts.path);
    this.blockSize = opts.blockSize ?? BLOCK_SIZE;
    const endpoint = (opts.endpoint ?? `https://${opts.account}.blob.core.windows.net`).replace(/\/+$/, '');
    const pipelineOpts = { retryOptions: { maxTries: opts.maxTries ?? 5, retryDelayInMs: 500, maxRetryDelayInMs: 8000, tryTimeoutInMs: 120_000 } };
    const service = opts.keyType === 'sas'
      ? new BlobServiceClient(`${endpoint}?${opts.key.replace(/^\?/, '')}`, undefined, pipelineOpts)
      : new BlobServiceClient(endpoint, new StorageSharedKeyCredential(opts.account, opts.key), pipelineOpts);
    this.container = service.getContainerClient(opts.container);
  }

  private full(key: string): string { return this.names.full(key); }
  private dirPrefix(path: string): string { return this.names.dirPrefix(path); }

  private fail(err: unknown, what: string, key?: string): OpenrdsError {
    if (err instanceof OpenrdsError) return err;
    const e = err as RestErrorLike;
    if (key !== undefined && isMissing(err)) return new FileMissingError(`unable to ${what} '${key}': it does not exist in container '${this.opts.container}'`);
    const code = e?.code ?? e?.details?.errorCode ?? 'error';
    const status = e?.statusCode;
    const hint = code === 'ContainerNotFound' ? `create container '${this.opts.container}' (or fix repo1-azure-container)`
      : status === 403 || code === 'AuthenticationFailed' ? 'check repo1-azure-key (and repo1-azure-key-type: shared or sas)'
        : 'is the Azure endpoint reachable? (repo1-azure-endpoint, repo1-azure-account)';
    return new RepoUnavailableError(`unable to ${what}${key !== undefined ? ` '${key}'` : ''} in azure container '${this.opts.container}': ${code}${status ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(err)}`,
      { hint, cause: err });
  }

  newWrite(key: string, _opts?: StorageWriteOptions): Writable {
    const blob = this.container.getBlockBlobClient(this.full(key));
    // Block ids of one write are unique to it: a concurrent or earlier write of the key cannot mix in.
    const tag = randomBytes(8).toString('hex');
    const ids: string[] = [];
    return partedWrite({
      single: async (body) => { await blob.upload(body, body.length); },
      part: async (body, index) => {
        const id = Buffer.from(`${tag}-${String(index).padStart(8, '0')}`).toString('base64');
        ids[index] = id;
        await blob.stageBlock(id, body, body.length);
      },
      complete: async () => { await blob.commitBlockList(ids); },
      // Staged blocks that are never committed are not part of any blob (the service drops them).
      abort: async () => undefined,
    }, { partSize: this.blockSize, inFlight: this.opts.blocksInFlight ?? 2, fail: (err) => this.fail(err, 'write', key) });
  }

  async newRead(key: string, opts?: StorageReadOptions): Promise<Readable> {
    const offset = opts?.offset ?? 0;
    if (opts?.limit === 0) {
      if (!(await this.exists(key))) throw new FileMissingError(`unable to read '${key}': it does not exist in container '${this.opts.container}'`);
      return Readable.from([]);
    }
    try {
      const r = await this.container.getBlobClient(this.full(key)).download(offset, opts?.limit);
      return (r.readableStreamBody as Readable | undefined) ?? Readable.from([]);
    } catch (err) {
      // A range past the end of a non-empty blob: nothing to read.
      if ((err as RestErrorLike)?.statusCode === 416) return Readable.from([]);
      throw this.fail(err, 'read', key);
    }
  }

  async info(key: string): Promise<StorageInfo | undefined> {
    const name = key.split('/').pop() ?? key;
    try {
      const p = await this.container.getBlobClient(this.full(key)).getProperties();
      return { name, type: 'file', size: p.contentLength ?? 0, mtime: Math.floor((p.lastModified?.getTime() ?? 0) / 1000) };
    } catch (err) {
      if (!isMissing(err)) throw this.fail(err, 'stat', key);
    }
    const page = await this.pages(this.dirPrefix(key), false, 1).next();
    return !page.done && page.value.length > 0 ? { name, type: 'path', size: 0, mtime: 0 } : undefined;
  }

  async exists(key: string): Promise<boolean> {
    try {
      return await this.container.getBlobClient(this.full(key)).exists();
    } catch (err) {
      throw this.fail(err, 'stat', key);
    }
  }

  /** Pages of names under a prefix: hierarchical ('dir/' for sub-prefixes) or flat (files with sizes). */
  private async *pages(prefix: string, hierarchical: boolean, pageSize = 5000): AsyncGenerator<{ name: string; dir: boolean; size: number; mtime: number }[]> {
    try {
      if (hierarchical) {
        for await (const page of this.container.listBlobsByHierarchy('/', { prefix }).byPage({ maxPageSize: pageSize })) {
          yield [
            ...page.segment.blobPrefixes?.map((p) => ({ name: p.name, dir: true, size: 0, mtime: 0 })) ?? [],
            ...page.segment.blobItems.map((b) => ({ name: b.name, dir: false, size: b.properties.contentLength ?? 0, mtime: Math.floor((b.properties.lastModified?.getTime() ?? 0) / 1000) })),
          ];
        }
      } else {
        for await (const page of this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: pageSize })) {
          yield page.segment.blobItems.map((b) => ({ name: b.name, dir: false, size: b.properties.contentLength ?? 0, mtime: Math.floor((b.properties.lastModified?.getTime() ?? 0) / 1000) }));
        }
      }
    } catch (err) {
      throw this.fail(err, 'list', prefix);
    }
  }

  async list(path: string, opts?: StorageListOptions): Promise<string[]> {
    const prefix = this.dirPrefix(path);
    const names = new Set<string>();
    for await (const page of this.pages(prefix, true)) {
      for (const e of page) {
        const n = e.name.slice(prefix.length).replace(/\/$/, '');
        if (n) names.add(n);
      }
    }
    return [...names].filter((n) => !opts?.expression || opts.expression.test(n)).sort();
  }

  async *listRecursive(path: string): AsyncIterable<StorageInfo> {
    const prefix = this.dirPrefix(path);
    for await (const page of this.pages(prefix, false)) {
      for (const e of page) if (e.name.length > prefix.length) yield { name: e.name.slice(prefix.length), type: 'file', size: e.size, mtime: e.mtime };
    }
  }

  async remove(key: string, opts?: { errorOnMissing?: boolean }): Promise<void> {
    try {
      const r = await this.container.getBlobClient(this.full(key)).deleteIfExists();
      if (!r.succeeded && opts?.errorOnMissing) throw new FileMissingError(`unable to remove '${key}': it does not exist in container '${this.opts.container}'`);
    } catch (err) {
      throw this.fail(err, 'remove', key);
    }
  }

  async pathRemove(path: string, opts?: { recurse?: boolean }): Promise<void> {
    const names: string[] = [];
    for await (const e of this.listRecursive(path)) names.push(e.name);
    if (names.length === 0) return;
    if (!opts?.recurse) throw new AssertError(`unable to remove path '${path}': it is not empty`);
    const prefix = path === '' || path === '.' ? '' : `${path.replace(/\/+$/, '')}/`;
    // A few deletes at a time (batch delete is not in every emulator).
    for (let i = 0; i < names.length; i += 16) {
      await Promise.all(names.slice(i, i + 16).map((n) => this.remove(`${prefix}${n}`)));
    }
  }

  async put(key: string, data: Buffer | string, _opts?: StorageWriteOptions): Promise<void> {
    const body = Buffer.from(data);
    try {
      await this.container.getBlockBlobClient(this.full(key)).upload(body, body.length);
    } catch (err) {
      throw this.fail(err, 'write', key);
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await this.container.getBlobClient(this.full(key)).downloadToBuffer();
    } catch (err) {
      throw this.fail(err, 'read', key);
    }
  }
}
