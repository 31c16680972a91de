import * as https from 'node:https';
import { Readable, type Writable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, DeleteObjectsCommand,
  GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand,
  type ListObjectsV2CommandOutput, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { AssertError, FileMissingError, OpenrdsError, RepoUnavailableError } from '../error';
import { ObjectNames, partedWrite } from './object-store';
import type { Storage, StorageInfo, StorageListOptions, StorageReadOptions, StorageWriteOptions } from './storage';

export interface S3StorageOptions {
  bucket: string;
  /** https://s3.<region>.amazonaws.com when unset; any S3-compatible endpoint otherwise. */
  endpoint?: string;
  region: string;
  /** 'path': https://endpoint/bucket/key (most S3-compatible servers); 'host': https://bucket.endpoint/key. */
  uriStyle: 'host' | 'path';
  /** 'shared': the static key pair below; 'auto': the SDK's default chain (environment, profile, instance role). */
  keyType: 'shared' | 'auto';
  key?: string;
  keySecret?: string;
  verifyTls: boolean;
  /** Prefix of every key in the bucket (repo1-path). */
  path: string;
  /** Bytes per multipart part (default 16 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Parts uploaded at once by one write. */
  partsInFlight?: number;
  /** Attempts per request (the SDK retries 5xx, 429 and timeouts with backoff). */
  maxAttempts?: number;
}

const PART_SIZE = 16 * 1024 * 1024;
const DELETE_BATCH = 1000;

interface SdkError { name?: string; Code?: string; $metadata?: { httpStatusCode?: number }; code?: string; message?: string }

function isMissing(err: unknown): boolean {
  const e = err as SdkError;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404 && e?.name !== 'NoSuchBucket';
}

/**
 * An S3 (or S3-compatible) repository. A write is buffered into parts: a small file is one
 * PutObject, a large one a multipart upload whose CompleteMultipartUpload is the only moment it
 * becomes visible; a write destroyed or failed before that aborts the upload, so nothing is left
 * at the key. Reads are ranged GETs; listings paginate. Each request is retried by the SDK
 * (standard mode: 5xx, 429, timeouts, with backoff) up to `maxAttempts`.
 */
export class S3Storage implements Storage {
  readonly type = 's3';
  private readonly client: S3Client;
  private readonly names: ObjectNames;
  private readonly partSize: number;

  constructor(private readonly opts: S3StorageOptions) {
    if (!opts.bucket) throw new RepoUnavailableError('an s3 repository needs a bucket', { hint: 'set repo1-s3-bucket' });
    if (opts.keyType === 'shared' && (!opts.key || !opts.keySecret)) {
      throw new RepoUnavailableError('an s3 repository with repo1-s3-key-type=shared needs repo1-s3-key and repo1-s3-key-secret',
        { hint: 'set them in a 0600 configuration file or the environment, or use repo1-s3-key-type=auto for the default credential chain' });
    }
    this.names = new ObjectNames(opts.path);
    this.partSize = Math.max(5 * 1024 * 1024, opts.partSize ?? PART_SIZE);
    const config: S3ClientConfig = {
      region: opts.region,
      forcePathStyle: opts.uriStyle === 'path',
      maxAttempts: opts.maxAttempts ?? 5,
      retryMode: 'standard',
      // S3-compatible servers do not all speak the newer flexible checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: 10_000,
        requestTimeout: 120_000,
        ...(opts.verifyTls ? {} : { httpsAgent: new https.Agent({ rejectUnauthorized: false }) }),
      },
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      ...(opts.keyType === 'shared' ? { credentials: { accessKeyId: opts.key!, secretAccessKey: opts.keySecret! } } : {}),
    };
    this.client = new S3Client(config);
  }

  private full(key: string): string { return this.names.full(key); }
  private dirPrefix(path: string): string { return this.names.dirPrefix(path); }

  /** An SDK failure as our error: missing keys, an unreachable endpoint, credentials. */
  private fail(err: unknown, what: string, key?: string): OpenrdsError {
    if (err instanceof OpenrdsError) return err;
    const e = err as SdkError;
    if (key !== undefined && isMissing(err)) return new FileMissingError(`unable to ${what} '${key}': it does not exist in bucket '${this.opts.bucket}'`);
    const status = e?.$metadata?.httpStatusCode;
    const code = e?.name ?? e?.Code ?? e?.code ?? 'error';
    const hint = code === 'NoSuchBucket' ? `create bucket '${this.opts.bucket}' (or fix repo1-s3-bucket)`
      : ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden'].includes(code) || status === 403
        ? 'check repo1-s3-key / repo1-s3-key-secret (or the credentials of repo1-s3-key-type=auto) and the bucket policy'
        : 'is the S3 endpoint reachable? (repo1-s3-endpoint, repo1-s3-region, repo1-s3-uri-style)';
    return new RepoUnavailableError(`unable to ${what}${key !== undefined ? ` '${key}'` : ''} in s3 bucket '${this.opts.bucket}': ${code}${status ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(err)}`,
      { hint, cause: err });
  }

  newWrite(key: string, _opts?: StorageWriteOptions): Writable {
    const objectKey = this.names.full(key);
    const { bucket } = this.opts;
    // One multipart upload per write, made by the first part (parts run concurrently).
    let created: Promise<string> | undefined;
    const uploadId = (): Promise<string> => (created ??= this.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: objectKey })).then((r) => {
      if (!r.UploadId) throw new RepoUnavailableError(`s3 gave no upload id for '${key}'`);
      return r.UploadId;
    }));
    const parts: { ETag: string; PartNumber: number }[] = [];
    return partedWrite({
      single: async (body) => { await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: objectKey, Body: body, ContentLength: body.length })); },
      part: async (body, index) => {
        const r = await this.client.send(new UploadPartCommand({ Bucket: bucket, Key: objectKey, UploadId: await uploadId(), PartNumber: index + 1, Body: body, ContentLength: body.length }));
        parts.push({ ETag: r.ETag!, PartNumber: index + 1 });
      },
      complete: async () => {
        parts.sort((a, b) => a.PartNumber - b.PartNumber);
        await this.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: objectKey, UploadId: await uploadId(), MultipartUpload: { Parts: parts } }));
      },
      abort: async () => {
        const id = created ? await created.catch(() => undefined) : undefined;
        if (id) await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: objectKey, UploadId: id }));
      },
    }, { partSize: this.partSize, inFlight: this.opts.partsInFlight ?? 2, fail: (err) => this.fail(err, 'write', key) });
  }

  async newRead(key: string, opts?: StorageReadOptions): Promise<Readable> {
    const offset = opts?.offset ?? 0;
    if (opts?.limit === 0) {
      if (!(await this.exists(key))) throw new FileMissingError(`unable to read '${key}': it does not exist in bucket '${this.opts.bucket}'`);
      return Readable.from([]);
    }
    const range = offset > 0 || opts?.limit !== undefined ? `bytes=${offset}-${opts?.limit !== undefined ? offset + opts.limit - 1 : ''}` : undefined;
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.full(key), ...(range ? { Range: range } : {}) }));
      const body = r.Body as Readable | undefined;
      if (!body) return Readable.from([]);
      return body;
    } catch (err) {
      // A range past the end of a non-empty object: nothing to read.
      if ((err as SdkError)?.$metadata?.httpStatusCode === 416) return Readable.from([]);
      throw this.fail(err, 'read', key);
    }
  }

  async info(key: string): Promise<StorageInfo | undefined> {
    const name = key.split('/').pop() ?? key;
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.full(key) }));
      return { name, type: 'file', size: h.ContentLength ?? 0, mtime: Math.floor((h.LastModified?.getTime() ?? 0) / 1000) };
    } catch (err) {
      if (!isMissing(err)) throw this.fail(err, 'stat', key);
    }
    const r = await this.listPage(this.dirPrefix(key), undefined, undefined, 1);
    return (r.Contents?.length ?? 0) > 0 ? { name, type: 'path', size: 0, mtime: 0 } : undefined;
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.full(key) }));
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw this.fail(err, 'stat', key);
    }
  }

  private async listPage(prefix: string, delimiter: string | undefined, token: string | undefined, max?: number): Promise<ListObjectsV2CommandOutput> {
    try {
      return await this.client.send(new ListObjectsV2Command({
        Bucket: this.opts.bucket, Prefix: prefix, ...(delimiter ? { Delimiter: delimiter } : {}),
        ...(token ? { ContinuationToken: token } : {}), ...(max ? { MaxKeys: max } : {}),
      }));
    } catch (err) {
      throw this.fail(err, 'list', prefix);
    }
  }

  async list(path: string, opts?: StorageListOptions): Promise<string[]> {
    const prefix = this.dirPrefix(path);
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const r = await this.listPage(prefix, '/', token);
      for (const p of r.CommonPrefixes ?? []) if (p.Prefix) names.add(p.Prefix.slice(prefix.length).replace(/\/$/, ''));
      for (const o of r.Contents ?? []) if (o.Key && o.Key.length > prefix.length) names.add(o.Key.slice(prefix.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return [...names].filter((n) => !opts?.expression || opts.expression.test(n)).sort();
  }

  async *listRecursive(path: string): AsyncIterable<StorageInfo> {
    const prefix = this.dirPrefix(path);
    let token: string | undefined;
    do {
      const r = await this.listPage(prefix, undefined, token);
      for (const o of r.Contents ?? []) {
        if (!o.Key || o.Key.length <= prefix.length) continue;
        yield { name: o.Key.slice(prefix.length), type: 'file', size: o.Size ?? 0, mtime: Math.floor((o.LastModified?.getTime() ?? 0) / 1000) };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async remove(key: string, opts?: { errorOnMissing?: boolean }): Promise<void> {
    if (opts?.errorOnMissing && !(await this.exists(key))) {
      throw new FileMissingError(`unable to remove '${key}': it does not exist in bucket '${this.opts.bucket}'`);
    }
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.full(key) }));
    } catch (err) {
      if (!isMissing(err)) throw this.fail(err, 'remove', key);
    }
  }

  async pathRemove(path: string, opts?: { recurse?: boolean }): Promise<void> {
    const keys: string[] = [];
    for await (const e of this.listRecursive(path)) keys.push(`${this.dirPrefix(path)}${e.name}`);
    if (keys.length === 0) return;
    if (!opts?.recurse) throw new AssertError(`unable to remove path '${path}': it is not empty`);
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      try {
        const r = await this.client.send(new DeleteObjectsCommand({
          Bucket: this.opts.bucket, Delete: { Objects: keys.slice(i, i + DELETE_BATCH).map((Key) => ({ Key })), Quiet: true },
        }));
        if (r.Errors?.length) throw new RepoUnavailableError(`unable to remove ${r.Errors.length} object(s) under '${path}': ${r.Errors[0]!.Code} ${r.Errors[0]!.Message}`);
      } catch (err) {
        throw this.fail(err, 'remove path', path);
      }
    }
  }

  async put(key: string, data: Buffer | string, _opts?: StorageWriteOptions): Promise<void> {
    const body = Buffer.from(data);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.opts.bucket, Key: this.full(key), Body: body, ContentLength: body.length }));
    } catch (err) {
      throw this.fail(err, 'write', key);
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.full(key) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (err) {
      throw this.fail(err, 'read', key);
    }
  }
}
