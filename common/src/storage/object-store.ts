import { Writable } from 'node:stream';
import { AssertError } from '../error';

/**
 * Names in an object store: every repo key under the repository's prefix (repo1-path without its
 * leading '/'), '/' as the separator. Keys are relative, without '..'.
 */
export class ObjectNames {
  readonly prefix: string;

  constructor(repoPath: string) {
    this.prefix = repoPath.replace(/^\/+/, '').replace(/\/+$/, '');
  }

  /** The object name of a repo key. */
  full(key: string): string {
    if (key.startsWith('/') || key.split('/').includes('..')) throw new AssertError(`invalid repo key '${key}'`);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  /** The listing prefix of a repo path ('' or '.': the repository itself), ending in '/' unless empty. */
  dirPrefix(path: string): string {
    const p = path === '' || path === '.' ? '' : this.full(path).replace(/\/+$/, '');
    if (p === '') return this.prefix ? `${this.prefix}/` : '';
    return `${p}/`;
  }
}

/** What a parted write does with its bytes (an S3 multipart upload, Azure staged blocks). */
export interface PartedUpload {
  /** A file smaller than one part: written whole. */
  single(body: Buffer): Promise<void>;
  /** Part `index` (from 0) of a larger file. */
  part(body: Buffer, index: number): Promise<void>;
  /** Every part is stored: make the object visible. */
  complete(): Promise<void>;
  /** The write failed or was destroyed: nothing may become visible. */
  abort(): Promise<void>;
}

/**
 * A Writable that cuts its bytes into parts of `partSize`, uploads up to `inFlight` at once, and
 * commits in `final()`: the object store's complete-or-missing write. Errors are turned into the
 * driver's errors by `fail`.
 */
export function partedWrite(upload: PartedUpload, opts: { partSize: number; inFlight: number; fail: (err: unknown) => Error }): Writable {
  let pending: Buffer[] = [];
  let pendingSize = 0;
  let parts = 0;
  const inFlight = new Set<Promise<void>>();
  let failed: unknown;
  let committed = false;

  const send = async (body: Buffer): Promise<void> => {
    const p = upload.part(body, parts++).catch((err: unknown) => { failed ??= err; }).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= Math.max(1, opts.inFlight)) await Promise.race(inFlight);
    if (failed) throw failed;
  };
  const abort = async (): Promise<void> => {
    await Promise.allSettled(inFlight);
    if (!committed) await upload.abort().catch(() => undefined);
  };

  return new Writable({
    highWaterMark: 1024 * 1024,
    write: (chunk: Buffer, _e, cb) => {
      pending.push(chunk);
      pendingSize += chunk.length;
      if (pendingSize < opts.partSize) return cb();
      const all = Buffer.concat(pending, pendingSize);
      const rest = all.subarray(opts.partSize);
      pending = rest.length ? [Buffer.from(rest)] : [];
      pendingSize = rest.length;
      send(Buffer.from(all.subarray(0, opts.partSize))).then(() => cb(), (err: unknown) => cb(opts.fail(err)));
    },
    final: (cb) => {
      void (async () => {
        const body = Buffer.concat(pending, pendingSize);
        if (parts === 0) {
          await upload.single(body);
        } else {
          if (body.length > 0) await send(body);
          await Promise.all(inFlight);
          if (failed) throw failed;
          await upload.complete();
        }
        committed = true;
      })().then(() => cb(), (err: unknown) => { void abort().finally(() => cb(opts.fail(err))); });
    },
    destroy: (err, cb) => {
      if (committed) return cb(err);
      void abort().finally(() => cb(err));
    },
  });
}
