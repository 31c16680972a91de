import * as os from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../error';
import { ZstdDataError } from './zstd';

/**
 * A pool of worker threads that run the CPU-heavy filters of file streams (zstd and sha256 of
 * both sides) so that every core works while the main thread keeps reads, writes and gRPC
 * moving. Output per chunk is bounded for 'compress' and 'hash'; 'decompress' returns a whole
 * chunk's content at once (a highly compressed chunk can be large), so restore decompresses on
 * the main thread with the sliced transform and uses the pool only where output is bounded. A file's stream is a session pinned to one worker, which keeps its zstd context and
 * hashes; chunks go over in order and come back in order.
 */
/** 'hash' passes the bytes on; 'digest' only hashes them (nothing comes out). */
export type PoolMode = 'compress' | 'decompress' | 'hash' | 'digest';

export interface PoolResult {
  /** sha256 and size of what went in (compress: the file; decompress: the repo bytes). */
  inSha256: string; inSize: number;
  /** sha256 and size of what came out (compress: the repo bytes; decompress: the file). */
  outSha256: string; outSize: number;
}

// The worker is code in a string (eval) so that it runs the same from dist/, from an install and
// under jest's TypeScript transform; zstd-napi's path comes from the parent's resolution.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const z = require(workerData.zstd);
const OUT = z.cStreamOutSize();
const sessions = new Map();
function step(s, input, end) {
  const parts = [];
  s.inHash.update(input); s.inSize += input.length;
  if (s.mode === 'hash' || s.mode === 'digest') { if (s.mode === 'hash' && input.length) parts.push(input); }
  else if (s.mode === 'compress') {
    let rest = input;
    for (;;) {
      const out = Buffer.allocUnsafe(OUT);
      const [remaining, produced, consumed] = s.ctx.compressStream2(out, rest, end ? z.EndDirective.end : z.EndDirective.continue);
      rest = rest.subarray(consumed);
      if (produced > 0) parts.push(out.subarray(0, produced));
      if (end ? remaining === 0 : rest.length === 0) break;
    }
  } else {
    if (input.length) s.seen = true;
    let rest = input;
    // At the end there is no input: the state of the last chunk says whether a frame is open
    // (another call would report the header of a next frame as missing input).
    for (; input.length > 0;) {
      const out = Buffer.allocUnsafe(OUT);
      const [remaining, produced, consumed] = s.ctx.decompressStream(out, rest);
      rest = rest.subarray(consumed);
      s.inFrame = remaining !== 0;
      if (produced > 0) parts.push(out.subarray(0, produced));
      if (rest.length === 0 && produced < OUT) break;
    }
    if (end && !s.seen) throw Object.assign(new Error('zstd data is empty: expected at least one frame'), { zstdData: true });
    if (end && s.inFrame) throw Object.assign(new Error('zstd data ends in the middle of a frame: it is truncated'), { zstdData: true });
  }
  const out = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  s.outHash.update(out); s.outSize += out.length;
  return out;
}
parentPort.on('message', (m) => {
  try {
    if (m.op === 'whole') {
      // A whole buffer in one message (a WAL segment): sha256 and zstd in one pass, no session.
      const input = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      const s = { mode: 'compress', inHash: createHash('sha256'), outHash: createHash('sha256'), inSize: 0, outSize: 0, ctx: new z.CCtx() };
      s.ctx.setParameter(z.CParameter.compressionLevel, m.level);
      s.ctx.setParameter(z.CParameter.checksumFlag, 1);
      const out = step(s, input, true);
      parentPort.postMessage({ id: m.id, seq: 0, out, result: {
        inSha256: s.inHash.digest('hex'), inSize: s.inSize, outSha256: s.outHash.digest('hex'), outSize: s.outSize } },
        out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? [out.buffer] : []);
      return;
    }
    if (m.op === 'unzstdDigest') {
      // Checks a whole zstd buffer: sha256 and size of its content and its first bytes; the content stays here.
      const input = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      const ctx = new z.DCtx();
      const inHash = createHash('sha256').update(input), outHash = createHash('sha256');
      let outSize = 0, rest = input, inFrame = false;
      const head = [];
      let headLength = 0;
      while (input.length > 0) {
        const out = Buffer.allocUnsafe(OUT);
        const [remaining, produced, consumed] = ctx.decompressStream(out, rest);
        rest = rest.subarray(consumed);
        inFrame = remaining !== 0;
        if (produced > 0) {
          const part = out.subarray(0, produced);
          outHash.update(part); outSize += produced;
          if (headLength < m.head) { head.push(Buffer.from(part.subarray(0, m.head - headLength))); headLength += Math.min(produced, m.head - headLength); }
        }
        // Done when the input is used up and the last call did not fill its output (nothing is pending).
        if (rest.length === 0 && produced < OUT) break;
      }
      if (input.length === 0) throw Object.assign(new Error('zstd data is empty: expected at least one frame'), { zstdData: true });
      if (inFrame) throw Object.assign(new Error('zstd data ends in the middle of a frame: it is truncated'), { zstdData: true });
      parentPort.postMessage({ id: m.id, seq: 0, out: Buffer.concat(head), result: {
        inSha256: inHash.digest('hex'), inSize: input.length, outSha256: outHash.digest('hex'), outSize } });
      return;
    }
    if (m.op === 'open') {
      const s = { mode: m.mode, inHash: createHash('sha256'), outHash: createHash('sha256'), inSize: 0, outSize: 0, seen: false, inFrame: false };
      if (m.mode === 'compress') {
        s.ctx = new z.CCtx();
        s.ctx.setParameter(z.CParameter.compressionLevel, m.level);
        s.ctx.setParameter(z.CParameter.checksumFlag, 1);
      } else if (m.mode === 'decompress') s.ctx = new z.DCtx();
      sessions.set(m.id, s);
      return;
    }
    const s = sessions.get(m.id);
    if (m.op === 'abort') { sessions.delete(m.id); return; }
    if (!s) return;
    if (m.op === 'data') {
      const input = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      parentPort.postMessage({ id: m.id, seq: m.seq, out: step(s, input, false) });
    } else if (m.op === 'end') {
      const out = step(s, Buffer.alloc(0), true);
      sessions.delete(m.id);
      parentPort.postMessage({ id: m.id, seq: m.seq, out, result: {
        inSha256: s.inHash.digest('hex'), inSize: s.inSize, outSha256: s.outHash.digest('hex'), outSize: s.outSize } });
    }
  } catch (err) {
    sessions.delete(m.id);
    parentPort.postMessage({ id: m.id, seq: m.seq, error: String(err && err.message || err), zstdData: !!(err && (err.zstdData || s_isZstd(err))) });
  }
});
function s_isZstd(err) { return err && err.code === undefined && /zstd|Unknown frame|checksum|Corrupted|Data corruption|Destination buffer/i.test(String(err.message)); }
`;

interface Pending { resolve: (m: WorkerReply) => void; reject: (e: Error) => void }
interface WorkerReply { id: number; seq: number; out?: Uint8Array; result?: PoolResult; error?: string; zstdData?: boolean }

class PoolWorker {
  readonly worker: Worker;
  sessions = 0;
  private readonly pending = new Map<string, Pending>();
  private failure: Error | undefined;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { zstd: require.resolve('zstd-napi/binding') } });
    this.worker.on('message', (m: WorkerReply) => {
      const key = `${m.id}:${m.seq}`;
      const p = this.pending.get(key);
      this.pending.delete(key);
      if (this.pending.size === 0) this.worker.unref();
      p?.resolve(m);
    });
    const fail = (err: Error): void => {
      this.failure = new InternalError(`filter worker failed: ${err.message}`, { cause: err });
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    // After the listeners (attaching a 'message' listener refs the worker's port again): an idle
    // pool must not keep a stopping daemon alive. post() refs it while replies are awaited.
    this.worker.unref();
  }

  get broken(): boolean { return this.failure !== undefined; }

  post(msg: { op: string; id: number; seq?: number; data?: Buffer; mode?: PoolMode; level?: number; head?: number }, transfer?: ArrayBuffer[]): Promise<WorkerReply> | undefined {
    if (this.failure) throw this.failure;
    if (msg.op === 'open' || msg.op === 'abort') {
      // eslint-disable-next-line unicorn/require-post-message-target-origin -- a worker thread, not a window
      this.worker.postMessage(msg);
      return undefined;
    }
    return new Promise<WorkerReply>((resolve, reject) => {
      // Work in flight keeps the process alive; an idle pool does not.
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(`${msg.id}:${msg.seq}`, { resolve, reject });
      // eslint-disable-next-line unicorn/require-post-message-target-origin -- a worker thread, not a window
      this.worker.postMessage(msg, transfer);
    });
  }
}

let nextSessionId = 1;

export class FilterPool {
  private readonly workers: PoolWorker[] = [];

  /** `size` workers at most (default: the number of cores), made when first needed. */
  constructor(private readonly size: number = os.cpus().length) {}

  /** A stream through one worker: `mode` with zstd `level` when compressing. */
  transform(mode: PoolMode, level = 3): PoolTransform {
    return new PoolTransform(this.idleWorker(), mode, level);
  }

  /**
   * sha256 and zstd of a whole buffer in one message to an idle worker (a WAL segment: one pass,
   * no per-chunk messages). The buffer's memory is moved to the worker when it owns it alone:
   * do not use `data` afterwards.
   */
  async compressWhole(data: Buffer, level: number): Promise<{ result: PoolResult; out: Buffer }> {
    const w = this.idleWorker();
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    w.sessions++;
    try {
      const m = await w.post({ op: 'whole', id: nextSessionId++, seq: 0, data, level }, own ? [data.buffer as ArrayBuffer] : undefined)!;
      if (m.error !== undefined) throw new InternalError(m.error);
      return { result: m.result!, out: Buffer.from(m.out!.buffer, m.out!.byteOffset, m.out!.byteLength) };
    } finally {
      w.sessions--;
    }
  }

  /**
   * Checks a whole zstd buffer on a worker: sha256 and size of both sides, and the first `head`
   * bytes of the content (a WAL header). The content itself is not sent back. ZstdDataError when
   * the data is damaged or truncated.
   */
  async zstdDigestWhole(data: Buffer, head: number): Promise<{ result: PoolResult; head: Buffer }> {
    const w = this.idleWorker();
    w.sessions++;
    try {
      const m = await w.post({ op: 'unzstdDigest', id: nextSessionId++, seq: 0, data, head })!;
      if (m.error !== undefined) throw m.zstdData ? new ZstdDataError(`zstd data is damaged: ${m.error}`) : new InternalError(m.error);
      return { result: m.result!, head: Buffer.from(m.out!.buffer, m.out!.byteOffset, m.out!.byteLength) };
    } finally {
      w.sessions--;
    }
  }

  /** The least busy worker, or a new one while the pool is not full. */
  private idleWorker(): PoolWorker {
    let w = this.workers.filter((x) => !x.broken).sort((a, b) => a.sessions - b.sessions)[0];
    if (!w || (w.sessions > 0 && this.workers.length < this.size)) {
      w = new PoolWorker();
      this.workers.push(w);
    }
    return w;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }
}

/** Chunks in flight to the worker per stream: reading the next overlaps work on the current. */
const IN_FLIGHT_MAX = 4;

/**
 * The Transform face of a pool session: chunks go to the worker in order, outputs are pushed in
 * order, and `result()` gives the hashes and sizes of both sides once the stream ended.
 */
export class PoolTransform extends Transform {
  private readonly id = nextSessionId++;
  private seq = 0;
  private inFlight = 0;
  private tail: Promise<void> = Promise.resolve();
  private waiting: TransformCallback | undefined;
  /** push() said the reader is full: hold the writer until _read. */
  private full = false;
  private done: PoolResult | undefined;
  private open = true;

  constructor(private readonly w: PoolWorker, readonly mode: PoolMode, level: number) {
    super({ highWaterMark: 1024 * 1024 });
    w.sessions++;
    w.post({ op: 'open', id: this.id, mode, level });
  }

  result(): PoolResult {
    if (!this.done) throw new InternalError('pool filter result asked before the stream finished');
    return this.done;
  }

  private reply(p: Promise<WorkerReply>): Promise<WorkerReply> {
    return p.then((m) => {
      if (m.error !== undefined) throw m.zstdData || this.mode === 'decompress' ? new ZstdDataError(`zstd data is damaged: ${m.error}`) : new InternalError(m.error);
      return m;
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let sent: Promise<WorkerReply>;
    try {
      sent = this.reply(this.w.post({ op: 'data', id: this.id, seq: this.seq++, data: chunk })!);
    } catch (err) {
      cb(err as Error);
      return;
    }
    this.inFlight++;
    this.tail = this.tail.then(async () => {
      const m = await sent;
      this.inFlight--;
      if (m.out && m.out.length > 0 && !this.push(Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength))) this.full = true;
      this.release();
    });
    this.tail.catch((err: Error) => { const w = this.waiting; this.waiting = undefined; if (w) w(err); else this.destroy(err); });
    if (this.hasRoom()) cb(); else this.waiting = cb;
  }

  /** More input may go to the worker: few chunks in flight, and the reader is keeping up. */
  private hasRoom(): boolean {
    return this.inFlight < IN_FLIGHT_MAX && !this.full;
  }

  /** Lets the writer go on once there is room again. */
  private release(): void {
    if (!this.waiting || !this.hasRoom()) return;
    const w = this.waiting;
    this.waiting = undefined;
    w();
  }

  override _read(size: number): void {
    // The reader wants more: what was pushed has been taken.
    this.full = false;
    this.release();
    // eslint-disable-next-line no-underscore-dangle
    super._read(size);
  }

  override _flush(cb: TransformCallback): void {
    (async () => {
      await this.tail;
      const m = await this.reply(this.w.post({ op: 'end', id: this.id, seq: this.seq++ })!);
      this.close();
      if (m.out && m.out.length > 0) this.push(Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength));
      this.done = m.result;
    })().then(() => cb(), (err: Error) => cb(err));
  }

  /** The session is over: the worker takes another. */
  private close(): void {
    if (!this.open) return;
    this.open = false;
    this.w.sessions--;
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (this.open) {
      this.close();
      try { this.w.post({ op: 'abort', id: this.id }); } catch { /* the worker is gone */ }
    }
    cb(err);
  }
}
