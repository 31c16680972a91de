import * as os from 'node:os';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { FileReadError, FileWriteError, InternalError } from '../error';
import { ZstdDataError } from './zstd';
import { blake3ModulePath, type ChecksumType } from './checksum';
import { CHUNK_HEADROOM, chunkHeadroomMark } from '../rpc/chunk-encode';
import { WRITE_MAX } from './write-max';

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
  /** Checksum and size of what went in (compress: the file; decompress: the repo bytes); sha256 unless the session was opened with another ChecksumType. */
  inSha256: string; inSize: number;
  /** Checksum and size of what came out (compress: the repo bytes; decompress: the file). */
  outSha256: string; outSize: number;
}

/**
 * Where compressFile's frames (a WAL segment's, a MiB of content each) are compressed: slots of
 * FRAME_SLOT bytes in one SharedArrayBuffer that the workers share with the main thread, each
 * room for the headroom and zstd's bound for a MiB. A worker compresses a frame straight into the
 * slot it was lent, the main thread sends it from there, and gives the slot back once the
 * repo-server has acknowledged the push (framesRecycle). No buffer is made, moved or collected
 * per frame: a fresh one cost the agent ~10 ms of copying and page faults per 16 MiB segment on
 * the bench host, and ~10 ms of GC. The slab takes pages only as far as each slot's largest
 * frame wrote, and is let go once every slot has been free for SLAB_IDLE_MS. A file is lent
 * SLOTS_PER_FILE slots at most (a 16 MiB segment); frames past those, or any when every slot is
 * out (64: two pushes per process-max at process-max 2), get fresh memory as before.
 */
const FRAME_SLOT = 4096 * Math.ceil((CHUNK_HEADROOM + 1024 * 1024 + 1024 * 1024 / 256) / 4096);
const FRAME_SLOTS = 64;
const SLOTS_PER_FILE = 16;
const SLAB_IDLE_MS = 60_000;
let frameSlab: SharedArrayBuffer | undefined;
let slabIdle: NodeJS.Timeout | undefined;
const slotsFree: number[] = [];
/** The slot of each frame view compressFile made in the slab. */
const slotOf = new WeakMap<Uint8Array, number>();
function slotsLend(): number[] {
  if (!frameSlab) {
    frameSlab = new SharedArrayBuffer(FRAME_SLOT * FRAME_SLOTS);
    for (let i = FRAME_SLOTS - 1; i >= 0; i--) slotsFree.push(i);
  }
  return slotsFree.splice(Math.max(0, slotsFree.length - SLOTS_PER_FILE));
}
function slotsGiveBack(slots: number[]): void {
  slotsFree.push(...slots);
  if (slotsFree.length < FRAME_SLOTS) return;
  clearTimeout(slabIdle);
  slabIdle = setTimeout(() => {
    if (slotsFree.length < FRAME_SLOTS) return;
    frameSlab = undefined;
    slotsFree.length = 0;
  }, SLAB_IDLE_MS).unref();
}

// The worker is code in a string (eval) so that it runs the same from dist/, from an install and
// under jest's TypeScript transform; zstd-napi's path comes from the parent's resolution.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const z = require(workerData.zstd);
// Checksums (see ChecksumType in checksum.ts): sha256 as hex, or 'blake3:<hex>'.
let Blake3Hasher;
function hashNew(type) {
  if (type === 'blake3') {
    Blake3Hasher = Blake3Hasher || require(workerData.blake3).Blake3Hasher;
    const h = new Blake3Hasher();
    return { update(b) { h.update(b); return this; }, digest() { return 'blake3:' + h.digest('hex'); } };
  }
  const h = createHash('sha256');
  return { update(b) { h.update(b); return this; }, digest() { return h.digest('hex'); } };
}
function checksumTypeOf(value) { return value && value.startsWith('blake3:') ? 'blake3' : 'sha256'; }
const OUT = z.cStreamOutSize();
const EMPTY = Buffer.alloc(0);
// The inbox (see PoolWorker.post): bytes the main thread copied in; \`consumed\` tells it how far
// this worker is done with them.
const inbox = { consumed: new BigInt64Array(workerData.inbox, 0, 1), data: Buffer.from(workerData.inbox, 8) };
const sessions = new Map();
// zstd contexts kept for the next file (a context costs a few MiB to set up).
// Keyed by level and kind: 'stream' (one frame, content checksum) or 'frames' (see FRAME).
const cctxs = new Map();
function cctxAcquire(level, kind = 'stream') {
  const free = cctxs.get(level + kind);
  if (free && free.length) return free.pop();
  const ctx = new z.CCtx();
  ctx.setParameter(z.CParameter.compressionLevel, level);
  ctx.setParameter(z.CParameter.checksumFlag, kind === 'stream' ? 1 : 0);
  return ctx;
}
function cctxRelease(level, ctx, kind = 'stream') {
  const key = level + kind;
  if (!cctxs.has(key)) cctxs.set(key, []);
  if (cctxs.get(key).length < 2) cctxs.get(key).push(ctx);
}
/**
 * Content of one zstd frame when a worker compresses a file it reads (or a WAL segment): each
 * frame is made by one call on a whole MiB (about 1.3x faster than the streaming API, which
 * copies its input into a window and adds a content checksum; the ratio is the same), carries
 * its content size, and the frames one after another are one zstd stream to any decoder. The
 * content's sha256 in the manifest is what restore and verify check it by.
 */
const FRAME = 1024 * 1024;
const FRAME_OUT = Buffer.allocUnsafeSlow(z.compressBound(FRAME));
/** What wholeFile reads into, a frame at a time. */
const WHOLE_READ = Buffer.allocUnsafeSlow(FRAME);
// Free bytes kept before each frame in its own memory (CHUNK_HEADROOM, chunk-encode.ts): the main
// thread writes the frame's message header there instead of copying the frame into a message.
const HEADROOM = ${CHUNK_HEADROOM};
/** The most bytes one write to a buffered file is given (WRITE_MAX, write-max.ts: large writes are slow on some hosts). */
const WRITE_MAX = ${WRITE_MAX};
/** Buffers made for one frame, with HEADROOM free bytes before it: moved to the main thread whole. */
const framed = new WeakSet();
/** \`n\` bytes in memory of their own, after HEADROOM free ones. */
function framedAlloc(n) {
  const own = Buffer.allocUnsafeSlow(HEADROOM + n);
  framed.add(own.buffer);
  return own.subarray(HEADROOM);
}
/** The size of a slot of the frame slab (FRAME_SLOT): the headroom and zstd's bound for a MiB. */
const SLOT = ${FRAME_SLOT};
if (SLOT < HEADROOM + z.compressBound(FRAME)) throw new Error('FRAME_SLOT is below the zstd bound of a frame');
/**
 * Compresses a block (at most FRAME bytes) into one frame, which goes to parts: for wholeFile
 * straight into the last slot of the frame slab it was lent (the one freed last, whose pages are
 * the likeliest in memory; a { slot, n } goes to parts), else through FRAME_OUT into fresh
 * memory of the frame's size.
 */
function frameEmit(s, block, parts) {
  if (s.slots && s.slots.length > 0) {
    const slot = s.slots.pop();
    const n = s.ctx.compress2(Buffer.from(s.slab, slot * SLOT + HEADROOM, SLOT - HEADROOM), block);
    s.outSize += n; parts.push({ slot, n });
    return;
  }
  const n = s.ctx.compress2(FRAME_OUT, block);
  const frame = framedAlloc(n);
  FRAME_OUT.copy(frame, 0, 0, n);
  if (!s.noOutHash) s.outHash.update(frame);
  s.outSize += n; parts.push(frame);
}
const dctxs = [];
function sessionOpen(mode, level, frames = false, checksum = 'sha256') {
  const s = { mode, level, frames, inHash: hashNew(checksum), outHash: hashNew(checksum), inSize: 0, outSize: 0, seen: false, inFrame: false };
  if (mode === 'compress') s.ctx = cctxAcquire(level, frames ? 'frames' : 'stream');
  else if (mode === 'decompress') s.ctx = dctxs.pop() || new z.DCtx();
  return s;
}
/** A finished session gives its context back (an aborted one drops it: it is mid-frame). */
function sessionDone(s) {
  if (s.mode === 'compress') cctxRelease(s.level, s.ctx, s.frames ? 'frames' : 'stream');
  else if (s.mode === 'decompress' && dctxs.length < 2) dctxs.push(s.ctx);
  s.ctx = undefined;
}
function sessionClose(s) {
  if (s.bfd !== undefined) { try { fs.closeSync(s.bfd); } catch {} s.bfd = undefined; }
  if (s.fd !== undefined) { try { fs.closeSync(s.fd); } catch {} s.fd = undefined; }
}
/** Ends a failed or aborted session: queued writes are skipped, and the descriptor is closed after
 * the write in progress (closing it under that write could hand its number to another file). */
function sessionKill(s) {
  if (s.dbuf) { directBufferPut(s.dbuf); s.dbuf = undefined; }
  if (!s.written) { sessionClose(s); return; }
  s.writeError = s.writeError || new Error('the write was aborted');
  s.written.then(() => sessionClose(s));
}
function result(s) {
  const inSha256 = s.inHash.digest();
  if (s.mode === 'hash') return { inSha256, inSize: s.inSize, outSha256: inSha256, outSize: s.inSize };
  return { inSha256, inSize: s.inSize, outSha256: s.outHash.digest(), outSize: s.outSize };
}
/** Runs input through the session's filter; output parts go to \`parts\` (hashed on the way). */
/**
 * One chunk of a session's input: hashed and (de)compressed. Output goes to \`parts\`, an array
 * (each piece a buffer of its own) or a function that sees each piece while it is valid (a
 * decompression whose output is only hashed reuses one buffer instead of a new one per piece).
 */
function step(s, input, end, parts) {
  s.inHash.update(input); s.inSize += input.length;
  if (s.mode === 'hash') { if (input.length) parts.push(input); return; }
  if (s.mode === 'digest') return;
  const seeOnly = typeof parts === 'function';
  const emit = (b) => { s.outHash.update(b); s.outSize += b.length; if (seeOnly) parts(b); else parts.push(b); };
  if (s.mode === 'compress') {
    let rest = input;
    for (;;) {
      const out = Buffer.allocUnsafe(OUT);
      const [remaining, produced, consumed] = s.ctx.compressStream2(out, rest, end ? z.EndDirective.end : z.EndDirective.continue);
      rest = rest.subarray(consumed);
      if (produced > 0) emit(out.subarray(0, produced));
      if (end ? remaining === 0 : rest.length === 0) break;
    }
  } else {
    if (input.length) s.seen = true;
    let rest = input;
    // At the end there is no input: the state of the last chunk says whether a frame is open
    // (another call would report the header of a next frame as missing input).
    for (; input.length > 0;) {
      const out = seeOnly ? scratchOf('step', OUT) : Buffer.allocUnsafe(OUT);
      const [remaining, produced, consumed] = s.ctx.decompressStream(out, rest);
      rest = rest.subarray(consumed);
      if (consumed > 0 || produced > 0) s.inFrame = remaining !== 0;
      if (produced > 0) emit(out.subarray(0, produced));
      if (rest.length === 0 && produced < OUT) break;
    }
    frameEndCheck(s, end);
  }
}
function frameEndCheck(s, end) {
  if (end && !s.seen) throw Object.assign(new Error('zstd data is empty: expected at least one frame'), { zstdData: true });
  if (end && s.inFrame) throw Object.assign(new Error('zstd data ends in the middle of a frame: it is truncated'), { zstdData: true });
}
/**
 * A write session's input (repo bytes): hashed, then decompressed (or copied, 'hash') into reused
 * write buffers queued for libuv's writes. While more than WRITE_QUEUE_MAX is queued the work
 * waits for writes to finish, so a highly compressed piece (a MiB of repo bytes can hold 40 MiB
 * of a table) never expands into memory at once.
 */
async function writeFeed(s, input, end) {
  if (s.direct) return directFeed(s, input, end);
  s.inHash.update(input); s.inSize += input.length;
  if (s.mode === 'hash') {
    for (let off = 0; off < input.length && !s.writeError; off += WRITE_OUT) {
      const piece = input.subarray(off, off + WRITE_OUT);
      const b = writeBufferGet();
      piece.copy(b);
      writeQueue(s, [b.subarray(0, piece.length)]);
      if (s.queued > WRITE_QUEUE_MAX) await writeRoom(s);
    }
    return;
  }
  if (input.length) s.seen = true;
  let rest = input;
  for (; input.length > 0 && !s.writeError;) {
    const out = writeBufferGet();
    const [remaining, produced, consumed] = s.ctx.decompressStream(out, rest);
    rest = rest.subarray(consumed);
    // A call that took and gave nothing (asked for more output after a full buffer) says
    // nothing about the frame: at a frame's end it would announce the next frame's header.
    if (consumed > 0 || produced > 0) s.inFrame = remaining !== 0;
    if (produced > 0) {
      const b = out.subarray(0, produced);
      s.outHash.update(b); s.outSize += produced;
      writeQueue(s, [b]);
    } else writeBufferPut(out);
    if (rest.length === 0 && produced < out.length) break;
    if (s.queued > WRITE_QUEUE_MAX) await writeRoom(s);
  }
  frameEndCheck(s, end);
}
/**
 * writeFeed of a direct session (see DIRECT): output fills aligned buffers a whole one at a time,
 * each written at its offset; the last one is written rounded up to DIRECT_ALIGN and the file
 * cut to its size at the end (directEnd).
 */
async function directFeed(s, input, end) {
  s.inHash.update(input); s.inSize += input.length;
  const hashOnly = s.mode === 'hash';
  if (!hashOnly && input.length) s.seen = true;
  let rest = input;
  // Until the input is used up and (decompressing) a call left room in the buffer: the decoder
  // holds no more output.
  while (!s.writeError && (rest.length > 0 || !hashOnly)) {
    if (!s.dbuf) { s.dbuf = await directBufferGet(); s.dfill = 0; }
    const room = s.dbuf.subarray(s.dfill);
    let produced, consumed;
    if (hashOnly) {
      produced = consumed = Math.min(room.length, rest.length);
      rest.copy(room, 0, 0, produced);
    } else {
      let remaining;
      [remaining, produced, consumed] = s.ctx.decompressStream(room, rest);
      if (consumed > 0 || produced > 0) s.inFrame = remaining !== 0;
      if (produced > 0) { s.outHash.update(room.subarray(0, produced)); s.outSize += produced; }
    }
    rest = rest.subarray(consumed);
    s.dfill += produced;
    if (s.dfill === s.dbuf.length) directQueue(s, s.dfill);
    // (A call that neither took nor gave anything ends it too, rather than spinning.)
    if (!hashOnly && produced < room.length && (rest.length === 0 || produced + consumed === 0)) break;
    if (s.queued > WRITE_QUEUE_MAX) await writeRoom(s);
  }
  if (!hashOnly) frameEndCheck(s, end);
  // A failed session's buffer goes back (its queued writes give theirs back as they end).
  if (s.writeError && s.dbuf) { directBufferPut(s.dbuf); s.dbuf = undefined; }
  if (end && s.dbuf) {
    if (s.dfill > 0) directQueue(s, Math.ceil(s.dfill / DIRECT_ALIGN) * DIRECT_ALIGN);
    else { directBufferPut(s.dbuf); s.dbuf = undefined; }
  }
}
/** Queues the session's filled aligned buffer (\`length\` bytes of it) at the next offset. */
function directQueue(s, length) {
  const b = s.dbuf, at = s.dpos;
  s.dbuf = undefined; s.dpos += length;
  s.queued += length;
  // Each write has its offset: up to DIRECT_IN_FLIGHT of them run at once (one at a time, a file
  // waits for the disk between MiBs).
  const slot = s.dslots = (s.dslots || Promise.resolve()).then(() => directSlot(s));
  const done = slot.then(() => s.writeError ? undefined : directWrite(s, b.subarray(0, length), at).catch((err) => { s.writeError = err; }))
    .then(() => {
      s.queued -= length;
      s.dinflight--;
      const next = s.dslotWaiting; s.dslotWaiting = undefined; if (next) next();
      directBufferPut(b);
      if (s.drained && s.queued <= WRITE_QUEUE_MAX / 2) { const go = s.drained; s.drained = undefined; go(); }
    });
  s.written = Promise.all([s.written, done]);
}
const DIRECT_IN_FLIGHT = 4;
function directSlot(s) {
  s.dinflight = s.dinflight || 0;
  if (s.dinflight < DIRECT_IN_FLIGHT) { s.dinflight++; return; }
  return new Promise((resolve) => { s.dslotWaiting = () => { s.dinflight++; resolve(); }; });
}
/**
 * Large restored files are written with O_DIRECT where the file system takes it: the bytes go
 * from the worker's buffer to the disk, not through the page cache. Buffered, the kernel copies
 * every byte into pages it first has to find (about half of a restore's CPU time on the bench
 * machine, a VM where fresh pages cost more) and a restore bigger than memory pushes everything
 * else out of the cache. O_DIRECT needs the buffer, the offset and the length aligned: buffers
 * come from a WebAssembly.Memory (page-aligned), a MiB each, and the last one is written
 * rounded up, then the file is cut to its size.
 */
const DIRECT = process.platform === 'linux' && fs.constants.O_DIRECT !== undefined && process.env.OPENRDS_DIRECT_IO !== '0';
const DIRECT_ALIGN = 4096;
/** A MiB each, per worker: a file's queue (WRITE_QUEUE_MAX) and the one being filled; more sessions wait for them. */
const DIRECT_BUFFERS = 12;
let directMemory, directFree, directWaiting = [];
/** The aligned buffers, made on first use; false when they cannot be (address space limited): buffered then. */
function directReady() {
  if (directMemory === undefined) {
    try {
      directMemory = new WebAssembly.Memory({ initial: DIRECT_BUFFERS * WRITE_OUT / 65536, maximum: DIRECT_BUFFERS * WRITE_OUT / 65536 });
      directFree = Array.from({ length: DIRECT_BUFFERS }, (_, i) => Buffer.from(directMemory.buffer, i * WRITE_OUT, WRITE_OUT));
    } catch { directMemory = false; }
  }
  return directMemory !== false;
}
function directBufferGet() {
  if (directFree.length) return Promise.resolve(directFree.pop());
  return new Promise((resolve) => directWaiting.push(resolve));
}
function directBufferPut(b) {
  const full = Buffer.from(b.buffer, b.byteOffset, WRITE_OUT);
  const next = directWaiting.shift();
  if (next) next(full); else directFree.push(full);
}
// For tests only: direct writes from this offset on fail with EINVAL, as on a file system that
// takes O_DIRECT at open but refuses the writes (nothing here has one to test with).
const DIRECT_EINVAL_AT = Number(process.env.OPENRDS_TEST_DIRECT_WRITE_EINVAL_AT || Infinity);
/**
 * A write of a direct session. EINVAL (a device whose blocks are larger than DIRECT_ALIGN, a file
 * system that took O_DIRECT at open but not the write) sends this write and the rest of the file
 * through a second, buffered descriptor of the same file; the fsync of the first covers both.
 */
async function directWrite(s, b, at) {
  if (s.bfd === undefined) {
    try {
      if (at >= DIRECT_EINVAL_AT) throw Object.assign(new Error('EINVAL: invalid argument, write (injected)'), { code: 'EINVAL' });
      return await writeAllAt(s.fd, b, at);
    } catch (err) {
      if (err.code !== 'EINVAL') throw err;
      if (s.bfd === undefined) s.bfd = fs.openSync(s.path, 'r+');
    }
  }
  return writeAllAt(s.bfd, b, at);
}
/** Writes all of \`b\` at offset \`at\` (null: at the descriptor's position). */
function writeAllAt(fd, b, at) {
  return new Promise((resolve, reject) => {
    const more = (off) => fs.write(fd, b, off, Math.min(WRITE_MAX, b.length - off), at === null ? null : at + off, (err, n) => {
      if (err) reject(err); else if (off + n < b.length) more(off + n); else resolve();
    });
    more(0);
  });
}
/** Opens a restored file for writing: O_DIRECT when asked and taken (EINVAL: this file system does not). */
function writeOpenFd(s, file, fileMode, direct) {
  if (direct && DIRECT && directReady()) {
    try {
      s.fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_DIRECT, fileMode);
      s.direct = true; s.dpos = 0; s.path = file;
      return;
    } catch (err) { if (err.code !== 'EINVAL') throw err; }
  }
  s.fd = fs.openSync(file, 'w', fileMode);
}
/** Resolves once the session's queued writes are down to half of WRITE_QUEUE_MAX. */
function writeRoom(s) {
  if (s.queued <= WRITE_QUEUE_MAX / 2) return Promise.resolve();
  return new Promise((resolve) => { s.drained = resolve; });
}
/** A write session that failed on the way: closed, its error the answer to \`m\`. */
function writeFail(s, m, err) {
  if (sessions.get(m.id) === s) sessions.delete(m.id);
  if (!s.failed) { s.failed = true; sessionKill(s); }
  parentPort.postMessage({ id: m.id, seq: m.seq, error: String(err && err.message || err), errno: err && err.code,
    zstdData: !!(err && (err.zstdData || isZstd(err))) });
}
function join(parts) { return parts.length === 0 ? EMPTY : parts.length === 1 ? parts[0] : Buffer.concat(parts); }
/** Replies; an output buffer that owns its memory is moved, not copied. */
function reply(m, payload, out) {
  const own = out && out.length > 0 && out.byteOffset + out.byteLength === out.buffer.byteLength
    && (out.byteOffset === 0 || (out.byteOffset === HEADROOM && framed.has(out.buffer)));
  parentPort.postMessage({ id: m.id, seq: m.seq, ...payload, ...(out && out.length ? { out } : {}) }, own ? [out.buffer] : []);
}
/** Writes all of \`data\` at the descriptor's position, WRITE_MAX bytes a call at most. */
function writeFullSync(fd, data) {
  let n = 0;
  while (n < data.length) n += fs.writeSync(fd, data, n, Math.min(WRITE_MAX, data.length - n));
}

function readFull(fd, buf, length, position) {
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
const WRITE_QUEUE_MAX = 8 * 1024 * 1024;
/** Files written and closed whose fsync is still running, and the failures not yet reported. */
const syncing = new Set();
const syncErrors = [];
const SYNCING_MAX = 8;
const SYNCING_SMALL_MAX = 64;
/** fsync and close of a written file, tracked in \`syncing\`; a failure waits in \`syncErrors\` for 'syncAll'. */
function syncInBackground(fd, file) {
  const synced = new Promise((resolve) => fs.fsync(fd, (err) => {
    if (err) syncErrors.push({ error: 'unable to fsync ' + file + ': ' + (err.message || err), errno: err.code });
    fs.close(fd, () => { syncing.delete(synced); resolve(); });
  }));
  syncing.add(synced);
}
/** Queues output of a write session; s.written resolves once all of it is written (errors go to s.writeError). */
function writeQueue(s, parts) {
  for (const b of parts) {
    s.queued += b.length;
    s.written = s.written.then(() => s.writeError ? undefined : writeAllAt(s.fd, b, null).catch((err) => { s.writeError = err; }))
      .then(() => {
        s.queued -= b.length;
        writeBufferPut(b);
        if (s.drained && s.queued <= WRITE_QUEUE_MAX / 2) { const go = s.drained; s.drained = undefined; go(); }
      });
  }
}
/**
 * Output buffers of write sessions (a restore's decompressed content), each reused once written:
 * a fresh buffer per piece is garbage the worker's heap does not feel (its bytes live outside
 * it), so hundreds of MiB of them waited for a collection. A MiB each: fewer, larger writes.
 */
const WRITE_OUT = 1024 * 1024;
/**
 * Buffers kept for reuse: two sessions' queues (WRITE_QUEUE_MAX each). More were kept once (32),
 * and a worker then held 32 MiB of them after every restore, idle.
 */
const WRITE_BUFFERS_KEPT = 16;
const writeBuffers = [];
function writeBufferGet() { return writeBuffers.pop() || Buffer.allocUnsafeSlow(WRITE_OUT); }
/** Takes back a buffer from writeBufferGet (any view of it); others are left to the GC. */
function writeBufferPut(b) {
  if (b.buffer.byteLength === WRITE_OUT && b.byteOffset === 0 && writeBuffers.length < WRITE_BUFFERS_KEPT) writeBuffers.push(Buffer.from(b.buffer, 0, WRITE_OUT));
}
function errorOf(err) { return { error: String(err.message || err), errno: err.code }; }
/** Opens a file to read; undefined when it is gone (a table dropped since the listing). */
function openRead(p) {
  try { return fs.openSync(p, 'r'); } catch (err) { if (err.code === 'ENOENT') return undefined; throw err; }
}
/** Bytes read at a time to be hashed (and compressed) at once: they stay in the core's L2 cache. */
const READ_PIECE = 128 * 1024;
const HASH_BUFFER = Buffer.allocUnsafeSlow(READ_PIECE);
/** Checksum (of \`type\`) and size of a file read whole; undefined when it is gone. */
function hashOf(p, type) {
  const fd = openRead(p);
  if (fd === undefined) return undefined;
  const hash = hashNew(type);
  let size = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, HASH_BUFFER, 0, HASH_BUFFER.length, size);
      if (n === 0) break;
      hash.update(HASH_BUFFER.subarray(0, n)); size += n;
    }
  } finally { fs.closeSync(fd); }
  return { sha256: hash.digest(), size };
}
/**
 * hashOf for a delta restore's larger files: read with O_DIRECT a MiB at a time into an aligned
 * buffer (see DIRECT). A delta restore reads the whole cluster, which is mostly not in the page
 * cache (a restore writes with O_DIRECT; a cluster larger than memory never is): read through
 * the cache, every page has to be found first, which cost 2.2 s of CPU per GB read cold on the
 * bench machine against 0.05 s direct (dd: 2.5 s against 0.6 s). Reads of a cached file go to
 * the disk too. Falls back to hashOf where O_DIRECT is not taken (EINVAL) or no buffer is free.
 */
const DIRECT_READ_MIN = 1024 * 1024;
async function hashOfDirect(p, type) {
  if (!DIRECT || !directReady() || directFree.length < 2) return hashOf(p, type);
  let fd;
  try { fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECT); } catch (err) {
    if (err.code === 'ENOENT') return undefined;
    if (err.code === 'EINVAL') return hashOf(p, type);
    throw err;
  }
  const bufs = [directFree.pop(), directFree.pop()];
  const read = (i, at) => new Promise((resolve, reject) => fs.read(fd, bufs[i], 0, bufs[i].length, at, (err, n) => (err ? reject(err) : resolve(n))));
  const hash = hashNew(type);
  let size = 0;
  try {
    let i = 0;
    let n;
    try { n = await read(0, 0); } catch (err) { if (err.code === 'EINVAL') return hashOf(p, type); throw err; }
    for (;;) {
      if (n === 0) break;
      // A short read is the end of the file (an aligned read past it returns what there is).
      const next = n < bufs[i].length ? undefined : read(1 - i, size + n);
      // Handled if it fails before it is awaited: the hash below runs meanwhile.
      next?.catch(() => undefined);
      hash.update(bufs[i].subarray(0, n)); size += n;
      if (!next) break;
      n = await next;
      i = 1 - i;
    }
  } finally { fs.closeSync(fd); for (const b of bufs) directBufferPut(b); }
  return { sha256: hash.digest(), size };
}
/**
 * Scratch buffers a worker keeps, grown to the largest need and reused: a buffer made per small
 * file is garbage outside the worker's heap, which V8 collects only after tens of MiB of it (each
 * worker of a backup of 62,000 small files held up to ~60 MB of them).
 */
const scratch = { read: Buffer.alloc(0), out: Buffer.alloc(0), whole: Buffer.alloc(0), step: Buffer.alloc(0) };
function scratchOf(name, size) {
  if (scratch[name].length < size) scratch[name] = Buffer.allocUnsafeSlow(Math.max(size, 1024 * 1024));
  return scratch[name];
}
/** The bytes of \`b\` in a buffer of their own (moved, not copied, by reply). */
function ownCopy(b) {
  const own = Buffer.allocUnsafeSlow(b.length);
  b.copy(own);
  return own;
}
function zstdWhole(ctx, input, size) {
  // Decompresses into exactly \`size\` bytes (one more would mean the content is larger), in the
  // worker's scratch buffer: the caller is done with the result before it decompresses again.
  const out = scratchOf('whole', size + 1);
  let produced = 0, rest = input, inFrame = false;
  if (input.length === 0) throw Object.assign(new Error('zstd data is empty: expected at least one frame'), { zstdData: true });
  while (rest.length > 0) {
    const [remaining, n, consumed] = ctx.decompressStream(out.subarray(produced), rest);
    produced += n; rest = rest.subarray(consumed); inFrame = remaining !== 0;
    if (produced > size) throw Object.assign(new Error('zstd data holds more than the expected ' + size + ' bytes'), { zstdData: true });
    if (consumed === 0 && n === 0) break;
  }
  if (inFrame || rest.length > 0) throw Object.assign(new Error('zstd data ends in the middle of a frame: it is truncated'), { zstdData: true });
  return out.subarray(0, produced);
}
/**
 * Decompresses \`parts\` (zstd bytes, in order) through the decompress session \`s\` a MiB of input
 * at a time, hashing the content and keeping nothing of it but its first \`headMax\` bytes, which
 * it returns; ends the session. Throws on damaged, truncated or empty data.
 */
function unzstdCheck(s, parts, headMax) {
  const head = [];
  let headLength = 0;
  const see = (part) => {
    if (headLength < headMax) { head.push(Buffer.from(part.subarray(0, headMax - headLength))); headLength += Math.min(part.length, headMax - headLength); }
  };
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (total === 0) step(s, EMPTY, true, see);
  let fed = 0;
  for (const p of parts) {
    for (let off = 0; off < p.length; off += 1024 * 1024) {
      const piece = p.subarray(off, off + 1024 * 1024);
      fed += piece.length;
      step(s, piece, fed === total, see);
    }
  }
  sessionDone(s);
  return Buffer.concat(head);
}
/** Inbox regions in the order they were filled, each given back once its message is done with it. */
const inboxHeld = [];
parentPort.on('message', (m) => {
  if (!m.inbox) { handle(m); return; }
  // Bytes in the inbox: used until the handler (or the work it returns) is done with them (a
  // write queue copies what it keeps). The main thread fills the inbox in order, so a region is
  // given back only with every region before it: the mark only grows.
  m.data = inbox.data.subarray(m.inbox.start, m.inbox.start + m.inbox.length);
  const held = { end: m.inbox.end, done: false };
  inboxHeld.push(held);
  const release = () => {
    held.done = true;
    let mark;
    while (inboxHeld.length > 0 && inboxHeld[0].done) mark = inboxHeld.shift().end;
    if (mark !== undefined) Atomics.store(inbox.consumed, 0, BigInt(mark));
  };
  const work = handle(m);
  if (work) work.then(release, release); else release();
});
function handle(m) {
  let s;
  try {
    if (m.op === 'whole') {
      // A whole buffer in one message (a WAL segment): sha256 and zstd in one pass, no session.
      const input = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      s = sessionOpen('compress', m.level, true);
      const parts = [];
      // bare: the caller hashes the bytes itself (a staged part, a push's rest): zstd only.
      if (!m.bare) s.inHash.update(input);
      s.inSize = input.length;
      let off = 0;
      do { frameEmit(s, input.subarray(off, off + FRAME), parts); off += FRAME; } while (off < input.length);
      sessionDone(s);
      reply(m, { result: result(s) }, join(parts));
      return;
    }
    if (m.op === 'wholeFile') {
      // A WAL file read here a MiB at a time, each MiB hashed and compressed while it is in cache:
      // the main thread neither reads it nor holds it, and no buffer of the file's size is made.
      const fd = openRead(m.path);
      if (fd === undefined) { reply(m, { missing: true }); return; }
      s = sessionOpen('compress', m.level, true);
      // Nothing reads the checksum of the compressed bytes (the push names the content's).
      s.noOutHash = true;
      // Slots of the frame slab lent for this file's frames (see FRAME_SLOT).
      s.slab = m.slab; s.slots = m.slots || [];
      const parts = [];
      try {
        for (;;) {
          const n = readFull(fd, WHOLE_READ, FRAME, s.inSize);
          // The end after whole MiBs (a segment): no empty frame after them (an empty file gets one).
          if (n === 0 && s.inSize > 0) break;
          if (s.inSize + n > m.max) throw Object.assign(new Error('the file is larger than ' + m.max + ' bytes'), { code: 'EFBIG' });
          const block = WHOLE_READ.subarray(0, n);
          s.inHash.update(block); s.inSize += n;
          frameEmit(s, block, parts);
          if (n < FRAME) break;
        }
      } finally { fs.closeSync(fd); }
      sessionDone(s);
      // The frames as they are, not joined into one buffer (the main thread sends each as a
      // message, encoded in place): those in the slab as their slot and length (it is shared),
      // others moved in their own memory with its headroom.
      parentPort.postMessage({ id: m.id, seq: m.seq, result: { inSha256: s.inHash.digest(), inSize: s.inSize, outSha256: '', outSize: s.outSize }, frames: parts },
        parts.filter((p) => p.buffer).map((p) => p.buffer));
      return;
    }
    if (m.op === 'unzstdDigest') {
      // Checks a whole zstd buffer: sha256 and size of its content and its first bytes; the content stays here.
      s = sessionOpen('decompress');
      const head = unzstdCheck(s, [Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)], m.head);
      reply(m, { result: result(s) }, head);
      return;
    }
    if (m.op === 'unzstdWrite') {
      // A pushed WAL file stored and checked here (see zstdWriteDigest): its zstd bytes written to
      // the descriptor with an fdatasync started, then decompressed and hashed while the disk
      // works. The bytes came moved from the main thread: it neither copies them into a message
      // nor writes them itself.
      const parts = m.parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
      let at = m.at;
      for (const p of parts) {
        for (let done = 0; done < p.length;) done += fs.writeSync(m.fd, p, done, Math.min(WRITE_MAX, p.length - done), at + done);
        at += p.length;
      }
      const synced = new Promise((resolve) => fs.fdatasync(m.fd, resolve));
      return (async () => {
        let failure;
        let head = EMPTY;
        try {
          s = sessionOpen('decompress');
          // The zstd bytes' own checksum is not asked for.
          s.inHash = { update() { return this; }, digest() { return ''; } };
          head = unzstdCheck(s, parts, m.head);
        } catch (err) { failure = err; }
        // Replied only once the fdatasync is over, whatever the check found: the caller may close
        // the descriptor as soon as it hears.
        const syncErr = await synced;
        if (failure) {
          parentPort.postMessage({ id: m.id, seq: m.seq, error: String(failure.message || failure), errno: failure.code, zstdData: !!(failure.zstdData || isZstd(failure)) });
          return;
        }
        if (syncErr) { reply(m, errorOf(syncErr)); return; }
        reply(m, { result: result(s) }, head);
      })();
    }
    if (m.op === 'hashFile') {
      // sha256 and size of a file read here: nothing crosses the thread boundary but the digest.
      const h = hashOf(m.path, m.checksum);
      if (h === undefined) { reply(m, { missing: true }); return; }
      reply(m, { result: { inSha256: h.sha256, inSize: h.size, outSha256: h.sha256, outSize: h.size } });
      return;
    }
    if (m.op === 'deltaCheck') {
      // Files of a delta restore checked in place: same size and sha256 (or mtime with force)
      // as in the backup. A file kept gets the backup's mode and mtime when they differ. Files
      // from DIRECT_READ_MIN on are read with O_DIRECT, the next MiB while this one is hashed.
      return (async () => {
        const same = [];
        for (const f of m.files) {
          // A file that cannot be looked at is fetched again (its write then says what is wrong).
          let st;
          try { st = fs.lstatSync(f.path, { throwIfNoEntry: false }); } catch { st = undefined; }
          let ok = false;
          if (st && st.isFile() && st.size === f.size) {
            if (f.force) ok = Math.floor(st.mtimeMs / 1000) === f.mtime;
            else if (f.size === 0) ok = f.emptySame;
            else {
              const type = checksumTypeOf(f.sha256);
              ok = (f.size >= DIRECT_READ_MIN ? await hashOfDirect(f.path, type) : hashOf(f.path, type))?.sha256 === f.sha256;
            }
          }
          if (ok) {
            if ((st.mode & 0o7777) !== f.mode) fs.chmodSync(f.path, f.mode);
            if (Math.floor(st.mtimeMs / 1000) !== f.mtime) fs.utimesSync(f.path, f.mtime, f.mtime);
          }
          same.push(ok);
        }
        reply(m, { items: same });
      })().catch((err) => reply(m, errorOf(err)));
    }
    if (m.op === 'readSmall') {
      // A batch of small files read, hashed and compressed here; the repo bytes of all come back in one buffer.
      // Each file is read into the scratch buffer and its repo bytes put after the previous one's
      // in the other; one buffer of exactly their size goes back.
      const items = [];
      const ctx = m.mode === 'compress' ? cctxAcquire(m.level) : undefined;
      const out = scratchOf('out', m.files.reduce((n, f) => n + (ctx ? z.compressBound(f.size) : f.size), 0));
      let off = 0;
      for (const f of m.files) {
        const fd = openRead(f.path);
        if (fd === undefined) { items.push({ missing: true }); continue; }
        const buf = scratchOf('read', f.size);
        let data;
        try { data = buf.subarray(0, readFull(fd, buf, f.size, 0)); } finally { fs.closeSync(fd); }
        const sha256 = hashNew(m.checksum).update(data).digest();
        const repoSize = ctx ? ctx.compress2(out.subarray(off), data) : data.copy(out, off);
        const repoSha256 = ctx ? hashNew(m.checksum).update(out.subarray(off, off + repoSize)).digest() : sha256;
        off += repoSize;
        items.push({ missing: false, size: data.length, sha256, repoSize, repoSha256 });
      }
      if (ctx) cctxRelease(m.level, ctx);
      reply(m, { items }, ownCopy(out.subarray(0, off)));
      return;
    }
    if (m.op === 'writeSmall') {
      // Small files of a restore: each decompressed, hashed and checked against the manifest, then
      // written with its mode and times; the fsyncs run in the background ('syncAll' waits).
      const items = [];
      const ctx = dctxs.pop() || new z.DCtx();
      let off = 0;
      for (const f of m.files) {
        const input = m.data.subarray(off, off + f.repoSize);
        off += f.repoSize;
        let data;
        try {
          data = f.compressed ? zstdWhole(ctx, input, f.size) : input;
        } catch (err) {
          ctx.reset(z.ResetDirective.sessionOnly);
          items.push({ corrupt: String(err.message || err) });
          break;
        }
        const sha256 = hashNew(checksumTypeOf(f.sha256)).update(data).digest();
        if (data.length !== f.size || sha256 !== f.sha256) { items.push({ size: data.length, sha256 }); break; }
        let fd;
        try {
          fd = fs.openSync(f.path, 'w', f.mode);
          writeFullSync(fd, data);
          fs.fchmodSync(fd, f.mode);
          fs.futimesSync(fd, f.mtime, f.mtime);
        } catch (err) {
          if (fd !== undefined) fs.closeSync(fd);
          items.push({ error: f.path + ': ' + String(err.message || err), errno: err.code });
          break;
        }
        if (f.syncNow) {
          // Durable before the reply, and a failure is this file's (not a later syncAll's).
          try { fs.fsyncSync(fd); } catch (err) {
            fs.closeSync(fd);
            items.push({ error: 'unable to fsync ' + f.path + ': ' + String(err.message || err), errno: err.code });
            break;
          }
          fs.closeSync(fd);
        } else {
          syncInBackground(fd, f.path);
        }
        items.push({ ok: true });
      }
      if (dctxs.length < 2) dctxs.push(ctx);
      const answer = () => reply(m, { items });
      if (syncing.size > SYNCING_SMALL_MAX) Promise.race(syncing).then(answer); else answer();
      return;
    }
    if (m.op === 'putFiles') {
      // Files stored atomically (a repository's small files): each written to its temp name here,
      // then fsynced in the background (many at once: the journal commits them together), closed
      // and renamed to its name. The reply comes once all of them are in place, or at the first
      // failure (files after it are not attempted; its temp file is removed).
      const done = [];
      let failure, off = 0;
      for (let i = 0; i < m.files.length; i++) {
        const f = m.files[i];
        const data = m.data.subarray(off, off + f.length);
        off += f.length;
        let fd;
        try {
          fd = fs.openSync(f.tmp, f.flags, f.mode);
          fs.fchmodSync(fd, f.mode);
          writeFullSync(fd, data);
        } catch (err) {
          if (fd !== undefined) { fs.closeSync(fd); fs.rmSync(f.tmp, { force: true }); }
          failure = { index: i, ...errorOf(err) };
          break;
        }
        done.push(new Promise((resolve) => {
          const commit = () => fs.close(fd, (errClose) => {
            if (errClose) return fs.rm(f.tmp, { force: true }, () => resolve({ index: i, ...errorOf(errClose) }));
            if (f.tmp === f.path) return resolve(undefined);
            fs.rename(f.tmp, f.path, (errRename) => errRename ? fs.rm(f.tmp, { force: true }, () => resolve({ index: i, ...errorOf(errRename) })) : resolve(undefined));
          });
          if (!f.sync) return commit();
          fs.fsync(fd, (errSync) => errSync
            ? fs.close(fd, () => fs.rm(f.tmp, { force: true }, () => resolve({ index: i, ...errorOf(errSync) })))
            : commit());
        }));
      }
      Promise.all(done).then((results) => {
        const first = results.find((r) => r) || failure;
        reply(m, first ? { failure: first } : {});
      });
      return;
    }
    if (m.op === 'commitFile') {
      // A temp file's commit (a staged WAL segment's): its last bytes written (\`data\` at \`at\`),
      // fdatasync, rename and the directory's fsync in one message, where each step through libuv
      // is a trip back to the main thread. The descriptor stays open (its owner closes it): only
      // the file's own name changes.
      try {
        for (let done = 0; m.data && done < m.data.length;) done += fs.writeSync(m.fd, m.data, done, m.data.length - done, m.at + done);
        fs.fdatasyncSync(m.fd);
        fs.renameSync(m.tmp, m.path);
        const dir = fs.openSync(path.dirname(m.path), 'r');
        try { fs.fsyncSync(dir); } finally { fs.closeSync(dir); }
        reply(m, {});
      } catch (err) { reply(m, errorOf(err)); }
      return;
    }
    if (m.op === 'readFiles') {
      // Small files read whole here (a repository's, for a restore): one message for many, each
      // missing, larger than \`max\` or past the message's \`bytes\` (the caller streams it), or
      // its bytes in the joined reply.
      // Sizes first, then every file read into its place in one buffer, which goes back whole.
      const items = [], fds = [];
      let budget = m.bytes, total = 0;
      try {
        for (const f of m.files) {
          const fd = openRead(f.path);
          if (fd === undefined) { items.push({ missing: true }); continue; }
          fds.push(fd);
          const size = fs.fstatSync(fd).size;
          if (size > f.max || size > budget) { items.push({ large: true }); fs.closeSync(fds.pop()); continue; }
          budget -= size;
          total += size;
          items.push({ size, fd });
        }
        const out = Buffer.allocUnsafeSlow(total);
        let off = 0;
        for (const item of items) {
          if (item.fd === undefined) continue;
          const n = readFull(item.fd, out.subarray(off, off + item.size), item.size, 0);
          item.size = n;
          off += n;
          delete item.fd;
        }
        reply(m, { items }, off === total ? out : out.subarray(0, off));
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
      return;
    }
    if (m.op === 'retire') {
      // Asked by an idle pool: the worker may go when nothing of it is still owed (an open file,
      // a background fsync, or a failure that a 'syncAll' has yet to report).
      reply(m, { clean: sessions.size === 0 && syncing.size === 0 && syncErrors.length === 0 });
      return;
    }
    if (m.op === 'syncAll') {
      // Every file this worker wrote is on disk, or the first failure is reported.
      Promise.all([...syncing]).then(() => {
        const failed = syncErrors.splice(0);
        reply(m, failed.length ? failed[0] : {});
        // The restore's writes are done: its spare buffers go (the next restore makes new ones),
        // collected now where the process allows it, rather than held by an idle worker.
        if (writeBuffers.length > 0) {
          writeBuffers.length = 0;
          if (typeof globalThis.gc === 'function') setTimeout(() => globalThis.gc(), 0);
        }
      });
      return;
    }
    if (m.op === 'open' || m.op === 'readOpen' || m.op === 'writeOpen') {
      s = sessionOpen(m.mode, m.level, m.op === 'readOpen', m.checksum);
      if (m.op === 'readOpen') {
        s.fd = openRead(m.path);
        if (s.fd === undefined) { sessionDone(s); reply(m, { missing: true }); return; }
        s.position = 0; s.limit = m.size;
      } else if (m.op === 'writeOpen') {
        writeOpenFd(s, m.path, m.fileMode, m.direct);
        s.queued = 0; s.written = Promise.resolve(); s.replies = Promise.resolve();
      }
      sessions.set(m.id, s);
      if (m.op !== 'open') reply(m, m.op === 'writeOpen' ? { direct: s.direct === true } : {});
      return;
    }
    s = sessions.get(m.id);
    if (m.op === 'abort') { sessions.delete(m.id); if (s) sessionKill(s); return; }
    // A session that failed or ended: later messages of it get an answer, so nothing waits forever.
    if (!s) { reply(m, { gone: true, error: 'the filter session is closed' }); return; }
    if (m.op === 'readNext') {
      // The next piece of the file (up to its listed size: bytes past it come from WAL replay),
      // read READ_PIECE at a time, each hashed while it is still in the CPU's cache (with a MiB
      // read whole first, the hash would fetch it from memory again).
      const want = Math.min(m.bytes, s.limit - s.position);
      const parts = [];
      let end = want === 0;
      const compress = s.mode === 'compress';
      if (compress) {
        // The input stays here: each piece is read into the session's frame buffer (one buffer
        // serves every read: fresh ones would grow the worker's memory until a GC) and hashed
        // there; a full buffer, or the file's end, becomes a frame (an empty file one empty frame).
        const block = s.block || (s.block = Buffer.allocUnsafeSlow(FRAME));
        s.blockUsed = s.blockUsed || 0;
        let got = 0;
        while (got < want && !end) {
          const length = Math.min(READ_PIECE, want - got, FRAME - s.blockUsed);
          const n = readFull(s.fd, block.subarray(s.blockUsed, s.blockUsed + length), length, s.position);
          s.inHash.update(block.subarray(s.blockUsed, s.blockUsed + n)); s.inSize += n;
          s.position += n; s.blockUsed += n; got += n;
          end = n < length || s.position >= s.limit;
          if (s.blockUsed === FRAME) { frameEmit(s, block, parts); s.blockUsed = 0; }
        }
        if (end && (s.blockUsed > 0 || s.outSize === 0)) { frameEmit(s, block.subarray(0, s.blockUsed), parts); s.blockUsed = 0; }
      } else if (!end) {
        // Passing the bytes on, each read gets its own buffer (with a frame's headroom), moved to the main thread.
        const buf = framedAlloc(want);
        let got = 0;
        while (got < want && !end) {
          const length = Math.min(READ_PIECE, want - got);
          const n = readFull(s.fd, buf.subarray(got, got + length), length, s.position);
          s.inHash.update(buf.subarray(got, got + n)); s.inSize += n;
          s.position += n; got += n;
          end = n < length || s.position >= s.limit;
        }
        if (got > 0) parts.push(got === buf.length ? buf : buf.subarray(0, got));
      }
      if (!end) { reply(m, {}, join(parts)); return; }
      sessions.delete(m.id);
      sessionClose(s);
      sessionDone(s);
      reply(m, { result: result(s) }, join(parts));
      return;
    }
    if (m.op === 'data') {
      const input = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      if (s.fd !== undefined) {
        // A write session: the pieces are worked in order, each written by libuv's threads while
        // the next is decompressed; the answer comes once the piece is queued (held back while
        // too much is), which holds the sender back.
        const session = s;
        return (s.replies = s.replies.then(async () => {
          if (session.failed) { reply(m, { gone: true, error: 'the filter session is closed' }); return; }
          try { await writeFeed(session, input, false); } catch (err) { writeFail(session, m, err); return; }
          reply(m, session.writeError ? errorOf(session.writeError) : {});
        }));
      }
      const parts = [];
      step(s, input, false, parts);
      reply(m, {}, join(parts));
    } else if (m.op === 'end') {
      sessions.delete(m.id);
      if (s.fd === undefined) {
        const parts = [];
        step(s, EMPTY, true, parts);
        sessionDone(s);
        reply(m, { result: result(s) }, join(parts));
        return;
      }
      s.replies = s.replies.then(async () => {
        if (s.failed) { reply(m, { gone: true, error: 'the filter session is closed' }); return; }
        try { await writeFeed(s, EMPTY, true); } catch (err) { writeFail(s, m, err); return; }
        await s.written;
        // The last aligned write went past the end: cut the file to its size.
        const size = s.mode === 'hash' ? s.inSize : s.outSize;
        if (s.direct && !s.writeError && s.dpos !== size) {
          try { fs.ftruncateSync(s.fd, size); } catch (err) { s.writeError = err; }
        }
        if (!s.writeError && m.mtime !== undefined) {
          try { fs.fchmodSync(s.fd, m.fileMode); fs.futimesSync(s.fd, m.mtime, m.mtime); } catch (err) { s.writeError = err; }
        }
        if (s.writeError) { sessionClose(s); reply(m, errorOf(s.writeError)); return; }
        sessionDone(s);
        // The fsync runs in the background: the next file goes on meanwhile, and 'syncAll' waits
        // for every one (and reports a failure) before the job may call its files durable.
        if (s.bfd !== undefined) { fs.closeSync(s.bfd); s.bfd = undefined; }
        const fd = s.fd;
        s.fd = undefined;
        syncInBackground(fd, m.path);
        if (syncing.size > SYNCING_MAX) await Promise.race(syncing);
        reply(m, { result: result(s) });
      });
    }
  } catch (err) {
    if (sessions.get(m.id) === s && s) { sessions.delete(m.id); sessionKill(s); }
    parentPort.postMessage({ id: m.id, seq: m.seq, error: String(err && err.message || err), errno: err && err.code,
      zstdData: !!(err && (err.zstdData || isZstd(err))) });
  }
}
function isZstd(err) { return err && err.code === undefined && /zstd|Unknown frame|checksum|Corrupted|Data corruption|Destination buffer/i.test(String(err.message)); }
`;

interface Pending { resolve: (m: WorkerReply) => void; reject: (e: Error) => void }
interface WorkerReply {
  id: number; seq: number; out?: Uint8Array; result?: PoolResult; error?: string; errno?: string; zstdData?: boolean;
  /** wholeFile: the zstd frames, each in a slot of the frame slab or in its own memory after its headroom. */
  frames?: (Uint8Array | { slot: number; n: number })[];
  missing?: boolean; gone?: boolean; items?: unknown[]; failure?: { index: number; error: string; errno?: string };
  /** writeOpen: the file is written with O_DIRECT. */
  direct?: boolean;
  /** retire: the worker holds nothing (no session, fsync or failure to report) and may be stopped. */
  clean?: boolean;
}

/** What a worker message may carry. */
interface WorkerMessage {
  op: string; id: number; seq?: number; data?: Buffer; mode?: PoolMode; level?: number; head?: number;
  path?: string; size?: number; bytes?: number; fileMode?: number; mtime?: number; files?: unknown[];
  /** The most bytes a file read whole may have. */
  max?: number;
  /** wholeFile: the frame slab (shared), and the slots of it lent for the file's frames. */
  slab?: SharedArrayBuffer;
  slots?: number[];
  /** The checksum type of what the worker hashes (default sha256; per file where a file says its own). */
  checksum?: ChecksumType;
  /** writeOpen: with O_DIRECT where the file system takes it (see DIRECT in the worker). */
  direct?: boolean;
  /** commitFile: the descriptor, its temp name and the name it takes, and where its last bytes (\`data\`) go. */
  fd?: number; tmp?: string; at?: number;
  /** Where the message's bytes are in the worker's inbox (instead of \`data\`). */
  inbox?: { start: number; length: number; end: number };
  /** whole: no checksum of the input (its caller has one). */
  bare?: boolean;
  /** unzstdWrite: the bytes, in order (moved where they own their memory). */
  parts?: Uint8Array[];
}

/**
 * Bytes of a worker's inbox: shared memory the main thread copies a message's bytes into (file
 * content for a restore's writes, batches of small files), so that the worker allocates nothing
 * per message. A buffer posted to a worker is a new allocation on its side, and garbage once
 * used; V8 collects such garbage (it lives outside the heap) only after tens of MiB of it, so
 * each worker of a restore held ~100 MiB of spent input. A message whose bytes do not fit while
 * the worker is behind is posted as before. 8 MiB: a batch of small files (4 MiB at most) fits;
 * 16 MiB per worker measured no faster and kept the repo-server's peak RSS ~20 MB higher.
 */
const INBOX_BYTES = 8 * 1024 * 1024;

/**
 * Whether posting `b` would clone much more than its bytes: it is a view into a buffer more than
 * twice its size and 64 KiB larger (a slice of Buffer's shared 8 KiB pool costs little to clone).
 */
export function viewOfLarger(b: Buffer): boolean {
  return b.buffer.byteLength > 2 * b.byteLength + 64 * 1024;
}

/**
 * Whether `b` is nearly all of an ordinary ArrayBuffer (a gRPC message's bytes: its own buffer,
 * a few header bytes before them): moving that buffer to a worker moves little else. Buffer's
 * shared pool (slices of 8 KiB) is never moved.
 */
function ownsMemory(b: Buffer): boolean {
  return b.buffer instanceof ArrayBuffer && b.byteLength >= 64 * 1024 && b.buffer.byteLength - b.byteLength <= 64;
}

/** The error of a worker reply: damaged zstd data, a file that could not be read or written, or a fault. */
function replyError(m: WorkerReply, what: string, writing: boolean): Error {
  if (m.zstdData) return new ZstdDataError(`zstd data is damaged: ${m.error!}`);
  if (m.errno) {
    const E = writing ? FileWriteError : FileReadError;
    return new E(`unable to ${writing ? 'write' : 'read'} ${what}: ${m.error!}`, { hint: writing ? 'check free space and permissions of the destination' : 'check that the file is readable by the agent' });
  }
  return new InternalError(m.error!);
}

/**
 * A worker idle this long is stopped (its heap, zstd contexts, inbox and aligned buffers go back to
 * the system); the next job starts a new one, which costs tens of milliseconds. A daemon holds
 * only what its current work needs: between backups it would otherwise keep the high-water mark
 * of each worker.
 */
const WORKER_IDLE_MS = 5000;
function workerIdleMs(): number {
  const v = Number(process.env.OPENRDS_WORKER_IDLE_MS ?? WORKER_IDLE_MS);
  return Number.isFinite(v) && v >= 0 ? v : WORKER_IDLE_MS;
}
/** Live workers, looked at every second while there are any. */
const liveWorkers = new Set<PoolWorker>();
let reaper: NodeJS.Timeout | undefined;

function reapIdleWorkers(): void {
  const now = Date.now();
  for (const w of liveWorkers) {
    if (FilterPool.idleMs === 0 || w.retiring || w.broken || !w.idle || now - w.lastActive < FilterPool.idleMs || w.warmUntil > now) continue;
    // Not given new work from now on; stopped if it says it holds nothing and nothing was posted
    // to it meanwhile (a 'syncAll' still goes to it, and is answered before it could go).
    w.retiring = true;
    w.post({ op: 'retire', id: nextSessionId++, seq: 0 })!.then((m) => {
      if (m.clean && w.idle) w.stop();
      else { w.retiring = false; w.lastActive = Date.now(); }
    }, () => undefined);
  }
}

class PoolWorker {
  readonly worker: Worker;
  sessions = 0;
  /** When a message was last posted or answered. */
  lastActive = Date.now();
  /** Asked to stop (idle): no new work goes to it. */
  retiring = false;
  /** Not stopped as idle before this time (see FilterPool.keepWarm). */
  warmUntil = 0;
  private readonly pending = new Map<string, Pending>();
  private failure: Error | undefined;
  /** The inbox: 8 bytes of the worker's consumed mark, then INBOX_BYTES of data. */
  private readonly inbox = new SharedArrayBuffer(8 + INBOX_BYTES);
  private readonly inboxConsumed = new BigInt64Array(this.inbox, 0, 1);
  private readonly inboxData = Buffer.from(this.inbox, 8);
  /** Bytes put in the inbox so far (a running count; positions are modulo its size). */
  private inboxProduced = 0;

  constructor() {
    // env: this module's process.env, said explicitly (the default is the process's own, which a
    // test runner's sandboxed process.env does not reach).
    this.worker = new Worker(WORKER_SOURCE, { eval: true, env: process.env, workerData: { zstd: require.resolve('zstd-napi/binding'), blake3: blake3ModulePath(), inbox: this.inbox } });
    this.worker.on('message', (m: WorkerReply) => {
      const key = `${m.id}:${m.seq}`;
      const p = this.pending.get(key);
      this.pending.delete(key);
      this.lastActive = Date.now();
      if (this.pending.size === 0) this.worker.unref();
      p?.resolve(m);
    });
    const fail = (err: Error): void => {
      this.failure = new InternalError(`filter worker failed: ${err.message}`, { cause: err });
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      fail(new Error(`exited with code ${code}`));
      liveWorkers.delete(this);
      if (liveWorkers.size === 0 && reaper) { clearInterval(reaper); reaper = undefined; }
    });
    liveWorkers.add(this);
    if (!reaper) { reaper = setInterval(reapIdleWorkers, 1000); reaper.unref(); }
    // After the listeners (attaching a 'message' listener refs the worker's port again): an idle
    // pool must not keep a stopping daemon alive. post() refs it while replies are awaited.
    this.worker.unref();
  }

  get broken(): boolean { return this.failure !== undefined; }
  /** No stream open on it and no reply awaited. */
  get idle(): boolean { return this.sessions === 0 && this.pending.size === 0; }
  /** Stopped as idle: broken from now on (skipped by syncAll, dropped from its pool). */
  stop(): void {
    this.failure = new InternalError('filter worker stopped as idle');
    void this.worker.terminate();
  }

  /** Copies \`parts\` into the inbox when they fit (contiguous; the end of the ring is skipped if need be). */
  private inboxPut(parts: Buffer[]): WorkerMessage['inbox'] {
    const length = parts.reduce((n, b) => n + b.length, 0);
    if (length === 0 || length > INBOX_BYTES / 2) return undefined;
    const at = this.inboxProduced % INBOX_BYTES;
    const skip = at + length > INBOX_BYTES ? INBOX_BYTES - at : 0;
    if (this.inboxProduced + skip + length - Number(Atomics.load(this.inboxConsumed, 0)) > INBOX_BYTES) return undefined;
    const start = (this.inboxProduced + skip) % INBOX_BYTES;
    let off = start;
    for (const b of parts) off += b.copy(this.inboxData, off);
    this.inboxProduced += skip + length;
    return { start, length, end: this.inboxProduced };
  }

  /**
   * Posts a message; \`bytes\` (the parts of its data) go through the inbox when they fit, else
   * as \`data\` (moved when \`transfer\` says so). Only for messages whose handler is done with
   * the bytes when it returns.
   */
  post(msg: WorkerMessage, transfer?: ArrayBuffer[], bytes?: Buffer[]): Promise<WorkerReply> | undefined {
    if (this.failure) throw this.failure;
    this.lastActive = Date.now();
    if (bytes) {
      const inbox = this.inboxPut(bytes);
      if (inbox) { msg.inbox = inbox; transfer = undefined; }
      else msg.data = bytes.length === 1 ? bytes[0]! : Buffer.concat(bytes);
    }
    if (msg.data && !transfer && viewOfLarger(msg.data)) {
      // A structured clone copies a view's whole ArrayBuffer, not the view: a MiB of a 16 MiB
      // buffer would cost 16 MiB (and ~80 ms) per message. Its own bytes are copied and moved.
      const own = Buffer.allocUnsafeSlow(msg.data.length);
      msg.data.copy(own);
      msg.data = own;
      transfer = [own.buffer as ArrayBuffer];
    }
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

/** A small file for `readSmall`: read, hashed and compressed on a worker. */
export interface PoolSmallRead { path: string; size: number }
export interface PoolSmallReadResult { missing: boolean; size: number; sha256: string; repoSize: number; repoSha256: string; repoData: Buffer }

/** A small file of a restore for `writeSmall`: its repo bytes (decrypted) and what the manifest says. */
export interface PoolSmallWrite {
  path: string; data: Buffer; size: number; sha256: string; mode: number; mtime: number; compressed: boolean;
  /** fsync before the reply (a fetched WAL segment) instead of in the background for `syncAll`. */
  syncNow?: boolean;
}
/** What became of it: written, damaged repo bytes, content other than the manifest's, or a write error. */
export type PoolSmallWriteResult = { ok: true } | { corrupt: string } | { size: number; sha256: string } | { error: string; errno?: string };

/** A file for `putFiles`: written to `tmp` (open `flags`), fsynced when `sync`, renamed to `path`. */
export interface PoolPutFile { tmp: string; path: string; flags: 'wx' | 'w'; mode: number; sync: boolean; data: Buffer }

/** A file of a delta restore for `deltaCheck`; `emptySame`: an empty file in place is the backup's (its manifest checksum is that of nothing). */
export interface PoolDeltaFile { path: string; size: number; sha256: string; mtime: number; mode: number; force: boolean; emptySame: boolean }

/** Bytes of whole files one readFiles message brings back at most. */
const READ_FILES_BYTES = 8 * 1024 * 1024;

/** Bytes a worker reads from a file per message when it streams one (backup of a large file). */
const FILE_READ_BYTES = 1024 * 1024;

/**
 * How long after a WAL push or fetch the pool keeps a worker (FilterPool.keepWarm): WAL comes at
 * least every archive_timeout on a quiet primary (often 60-300 s), and each call on a new worker
 * paid its start (78-124 ms measured in the repo-server's commit of a staged segment, under a
 * light load that made a segment every 10 s).
 */
export const WAL_WARM_MS = 10 * 60_000;

export class FilterPool {
  /**
   * How long a worker may sit idle before it is stopped (tests shorten it); OPENRDS_WORKER_IDLE_MS
   * sets it for a process, 0 keeps workers for its lifetime.
   */
  static idleMs = workerIdleMs();

  /** Workers running now (idle ones stop after `FilterPool.idleMs`). */
  get running(): number { return this.workers.filter((w) => !w.broken).length; }

  /**
   * `size` workers at most (default: the number of cores), made when first needed. Views made by
   * `limited()` share the workers of the pool they come from.
   */
  constructor(private readonly size: number = os.cpus().length, private readonly workers: PoolWorker[] = []) {}

  /**
   * Keeps this pool's most recently used worker from being stopped as idle for `ms` from now: for
   * work that comes every few seconds or minutes and that someone waits on (a WAL push, which
   * PostgreSQL's archive_command waits for; a segment a recovery fetches). A new worker costs tens
   * of milliseconds, and up to ~120 ms on a busy host, on every such call otherwise. Called after
   * the work, when the worker exists.
   */
  keepWarm(ms: number): void {
    let w: PoolWorker | undefined;
    for (const x of this.workers) if (!x.broken && !x.retiring && (!w || x.lastActive > w.lastActive)) w = x;
    if (w) w.warmUntil = Math.max(w.warmUntil, Date.now() + ms);
  }

  /** A view of this pool that uses `width` of its workers at most (a job's process-max). */
  limited(width: number): FilterPool {
    return new FilterPool(Math.max(1, Math.min(width, this.size)), this.workers);
  }

  /** sha256 and size of a file, read and hashed on a worker; undefined when it does not exist. */
  async hashFile(file: string, checksum: ChecksumType = 'sha256'): Promise<{ sha256: string; size: number } | undefined> {
    const m = await this.call({ op: 'hashFile', path: file, checksum }, `'${file}'`, false);
    return m.missing ? undefined : { sha256: m.result!.inSha256, size: m.result!.inSize };
  }

  /**
   * Files of a delta restore checked in place on one worker, in one message: for each, whether it
   * already has the backup's content (size and sha256; size and mtime with `force`). A file kept
   * gets the backup's mode and mtime when they differ.
   */
  async deltaCheck(files: PoolDeltaFile[]): Promise<boolean[]> {
    const m = await this.call({ op: 'deltaCheck', files }, `${files.length} file(s) from '${files[0]?.path ?? ''}'`, true);
    return m.items as boolean[];
  }

  /**
   * A file read by a worker (at most `size` bytes: what was listed), hashed and zstd-compressed
   * ('compress') or passed on ('hash'): only the repo bytes cross to this thread. undefined when
   * the file is gone.
   */
  async readFile(file: string, size: number, mode: 'compress' | 'hash', level = 3, checksum: ChecksumType = 'sha256'): Promise<PoolFileReader | undefined> {
    const w = this.idleWorker();
    const id = nextSessionId++;
    w.sessions++;
    let m: WorkerReply;
    try {
      m = await w.post({ op: 'readOpen', id, seq: 0, path: file, size, mode, level, checksum })!;
    } catch (err) {
      w.sessions--;
      throw err;
    }
    if (m.error !== undefined || m.missing) {
      w.sessions--;
      if (m.missing) return undefined;
      throw replyError(m, `'${file}'`, false);
    }
    return new PoolFileReader(w, id, file);
  }

  /**
   * A file written by a worker from repo bytes: zstd-decompressed ('decompress') or as they come
   * ('hash') and hashed; only the repo bytes cross to the worker. With `mtime` the worker sets the
   * mode and times at the end. The file's fsync runs in the background: `syncAll()` waits for it.
   */
  async writeFile(file: string, fileMode: number, mode: 'decompress' | 'hash', mtime?: number, checksum: ChecksumType = 'sha256', direct = false): Promise<PoolFileWriter> {
    const w = this.idleWorker();
    const id = nextSessionId++;
    w.sessions++;
    let m: WorkerReply;
    try {
      m = await w.post({ op: 'writeOpen', id, seq: 0, path: file, fileMode, mode, checksum, direct })!;
    } catch (err) {
      w.sessions--;
      throw err;
    }
    if (m.error !== undefined) {
      w.sessions--;
      throw replyError(m, `'${file}'`, true);
    }
    const writer = new PoolFileWriter(w, id, file, mode, fileMode, mtime);
    writer.direct = m.direct === true;
    return writer;
  }

  /**
   * Waits for the fsync of every file the workers wrote (`writeFile` syncs in the background);
   * a failure is a FileWriteError naming the file.
   */
  async syncAll(): Promise<void> {
    const replies = await Promise.all(this.workers.filter((w) => !w.broken).map((w) => w.post({ op: 'syncAll', id: nextSessionId++, seq: 0 })!));
    const failed = replies.find((m) => m.error !== undefined);
    if (failed) throw new FileWriteError(failed.error!, { hint: 'check the disk and free space of the destination, then restore again' });
  }

  /** Small files read, hashed and compressed (mode 'compress') on one worker, in one message. */
  async readSmall(files: PoolSmallRead[], mode: 'compress' | 'hash', level = 3, checksum: ChecksumType = 'sha256'): Promise<PoolSmallReadResult[]> {
    const m = await this.call({ op: 'readSmall', files, mode, level, checksum }, `${files.length} file(s) from '${files[0]?.path ?? ''}'`, false);
    const out = m.out ? Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength) : Buffer.alloc(0);
    let offset = 0;
    return (m.items as Omit<PoolSmallReadResult, 'repoData'>[]).map((item) => {
      if (item.missing) return { missing: true, size: 0, sha256: '', repoSize: 0, repoSha256: '', repoData: Buffer.alloc(0) };
      const repoData = out.subarray(offset, offset + item.repoSize);
      offset += item.repoSize;
      return { ...item, repoData };
    });
  }

  /**
   * Small files of a restore on one worker, in one message: each decompressed, checked against
   * its size and sha256, and written with its mode and times (fsync in the background: see
   * `syncAll`). The first failure ends the run: the files after it get no result.
   */
  async writeSmall(files: PoolSmallWrite[]): Promise<PoolSmallWriteResult[]> {
    const m = await this.call({
      op: 'writeSmall',
      files: files.map((f) => ({ path: f.path, repoSize: f.data.length, size: f.size, sha256: f.sha256, mode: f.mode, mtime: f.mtime, compressed: f.compressed, syncNow: f.syncNow === true })),
    }, `${files.length} file(s)`, true, undefined, files.map((f) => f.data));
    return m.items as PoolSmallWriteResult[];
  }

  /**
   * Files stored atomically on one worker, in one message (the small files of a backup in a
   * posix repository): each written to `tmp`, fsynced when `sync` (in the background, many at
   * once), closed and renamed to `path`. Resolves with how it went: every file in place, or the
   * first failure (by index: the files before it are in place, the ones after it not attempted).
   */
  async putFiles(files: PoolPutFile[]): Promise<{ failure?: { index: number; error: string; errno?: string } }> {
    const m = await this.call({
      op: 'putFiles',
      files: files.map((f) => ({ tmp: f.tmp, path: f.path, flags: f.flags, mode: f.mode, sync: f.sync, length: f.data.length })),
    }, `${files.length} file(s)`, true, undefined, files.map((f) => f.data));
    return m.failure ? { failure: m.failure } : {};
  }

  /**
   * Commits a written temp file on one worker, in one message: `last` written at offset `at`
   * (when given), fdatasync of `fd` (data and size durable), rename of `tmp` to `file` (in the
   * same directory) and fsync of that directory. The descriptor stays open. Rejects with the
   * first failure (the temp file then keeps its name).
   */
  async commitFile(fd: number, tmp: string, file: string, last?: { data: Buffer; at: number }): Promise<void> {
    await this.call({ op: 'commitFile', fd, tmp, path: file, ...(last && last.data.length > 0 ? { at: last.at } : {}) }, `'${file}'`, true,
      undefined, last && last.data.length > 0 ? [last.data] : undefined);
  }

  /**
   * Small files read whole on one worker, in one message: for each, its bytes, 'large' when it
   * is over `max` bytes or the message already holds `bytes` (not read: the caller streams it),
   * or 'missing'.
   */
  async readFiles(files: { path: string; max: number }[], bytes = READ_FILES_BYTES): Promise<(Buffer | 'large' | 'missing')[]> {
    const m = await this.call({ op: 'readFiles', files, bytes }, `${files.length} file(s) from '${files[0]?.path ?? ''}'`, false);
    const out = m.out ? Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength) : Buffer.alloc(0);
    let offset = 0;
    return (m.items as { missing?: boolean; large?: boolean; size?: number }[]).map((item) => {
      if (item.missing) return 'missing';
      if (item.large) return 'large';
      const data = out.subarray(offset, offset + item.size!);
      offset += item.size!;
      return data;
    });
  }

  /** One request to the least busy worker. */
  private async call(msg: Omit<WorkerMessage, 'id'>, what: string, writing: boolean, transfer?: ArrayBuffer[], bytes?: Buffer[]): Promise<WorkerReply> {
    const w = this.idleWorker();
    w.sessions++;
    try {
      const m = await w.post({ ...msg, id: nextSessionId++, seq: 0 }, transfer, bytes)!;
      if (m.error !== undefined) throw replyError(m, what, writing);
      return m;
    } finally {
      w.sessions--;
    }
  }

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
    return this.whole(data, level, false);
  }

  /**
   * zstd of a whole buffer, as compressWhole, without its checksum: for bytes the caller hashes
   * itself (a staged part of a WAL segment, whose running sha256 the stream keeps; a push's rest).
   */
  async compressBytes(data: Buffer, level: number): Promise<Buffer> {
    return (await this.whole(data, level, true)).out;
  }

  private async whole(data: Buffer, level: number, bare: boolean): Promise<{ result: PoolResult; out: Buffer }> {
    const w = this.idleWorker();
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    w.sessions++;
    try {
      // A buffer of its own moves to the worker; a view (a part of a larger read buffer) is copied
      // into the worker's inbox (memory already mapped on both sides, nothing allocated per part).
      const m = (own ? await w.post({ op: 'whole', id: nextSessionId++, seq: 0, data, level, bare }, [data.buffer as ArrayBuffer])
        : await w.post({ op: 'whole', id: nextSessionId++, seq: 0, level, bare }, undefined, [data]))!;
      if (m.error !== undefined) throw new InternalError(m.error);
      return { result: m.result!, out: Buffer.from(m.out!.buffer, m.out!.byteOffset, m.out!.byteLength) };
    } finally {
      w.sessions--;
    }
  }

  /**
   * Reads a file on a worker and compresses it whole (zstd frames of a MiB, as compressWhole):
   * its sha256 and size, and the compressed bytes as their frames, each in memory of its own
   * after CHUNK_HEADROOM free bytes (sent as messages encoded in place). Undefined when the file
   * is gone; an error when it is larger than `max`.
   */
  async compressFile(file: string, level: number, max: number): Promise<{ sha256: string; size: number; frames: Buffer[] } | undefined> {
    const w = this.idleWorker();
    w.sessions++;
    try {
      const slots = slotsLend();
      let m: WorkerReply;
      try {
        m = (await w.post({ op: 'wholeFile', id: nextSessionId++, seq: 0, path: file, level, max, slab: frameSlab, slots })!);
      } catch (err) {
        slotsGiveBack(slots);
        throw err;
      }
      const used = new Set<number>();
      const frames = (m.frames ?? []).map((f) => {
        if (f instanceof Uint8Array) {
          const b = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
          // The frame's memory is its own, moved here: its headroom is free (see chunk-encode.ts).
          chunkHeadroomMark(b);
          return b;
        }
        const b = Buffer.from(frameSlab!, f.slot * FRAME_SLOT + CHUNK_HEADROOM, f.n);
        // Its slot's first bytes, before it, are free.
        chunkHeadroomMark(b);
        slotOf.set(b, f.slot);
        used.add(f.slot);
        return b;
      });
      slotsGiveBack(slots.filter((slot) => !used.has(slot)));
      if (m.error !== undefined) throw replyError(m, `'${file}'`, false);
      if (m.missing) return undefined;
      return { sha256: m.result!.inSha256, size: m.result!.inSize, frames };
    } finally {
      w.sessions--;
    }
  }

  /**
   * Gives compressFile's frames' slots of the frame slab back for the next files' frames. The
   * caller is done with them: sent and acknowledged by the repo-server, or their push failed (its
   * call cancelled: what it may still send of them is refused whatever it holds, the repo-server
   * checking every push's content against its sha256). Frames in memory of their own are left to GC.
   */
  framesRecycle(frames: Buffer[]): void {
    const slots: number[] = [];
    for (const f of frames) {
      const slot = slotOf.get(f);
      if (slot === undefined) continue;
      slotOf.delete(f);
      slots.push(slot);
    }
    slotsGiveBack(slots);
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

  /**
   * A pushed WAL file on one worker, in one message: `parts` (its zstd bytes, in order) written
   * to `fd` at offset `at` with an fdatasync started, then checked while the disk works: the
   * content's sha256 and size, and its first `head` bytes. Resolves once the fdatasync is over,
   * whatever the check found. A part that owns its memory (a gRPC message's bytes) is moved to
   * the worker, not copied: do not use `parts` afterwards. ZstdDataError when the bytes are
   * damaged or truncated; FileWriteError (naming `what`) when the write or the fdatasync fails.
   */
  async zstdWriteDigest(parts: Buffer[], head: number, fd: number, at: number, what = 'a WAL file'): Promise<{ sha256: string; size: number; head: Buffer }> {
    const transfer: ArrayBuffer[] = [];
    const moved = parts.map((p) => {
      if (ownsMemory(p) && !transfer.includes(p.buffer as ArrayBuffer)) { transfer.push(p.buffer as ArrayBuffer); return p; }
      // A view into a larger buffer (or one sharing its memory with another part): its bytes only.
      const own = Buffer.allocUnsafeSlow(p.length);
      p.copy(own);
      transfer.push(own.buffer as ArrayBuffer);
      return own;
    });
    const m = await this.call({ op: 'unzstdWrite', parts: moved, head, fd, at }, what, true, transfer);
    return { sha256: m.result!.outSha256, size: m.result!.outSize, head: m.out ? Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength) : Buffer.alloc(0) };
  }

  /** The least busy of this pool's first `size` workers, or a new one while there are fewer. */
  private idleWorker(): PoolWorker {
    // A broken worker is replaced in place (views index the shared list).
    for (let i = 0; i < this.workers.length; i++) if (this.workers[i]!.broken) this.workers.splice(i--, 1);
    const mine = this.workers.filter((x) => !x.retiring).slice(0, this.size);
    let w = [...mine].sort((a, b) => a.sessions - b.sessions)[0];
    if (!w || (w.sessions > 0 && mine.length < this.size)) {
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

/**
 * The worker session behind a stream: counted on its worker while open (the pool gives new work
 * to the least busy worker); dropped there when the stream is destroyed before its end.
 */
class PoolSession {
  private open = true;
  constructor(readonly w: PoolWorker, readonly id: number) {}

  /** The session is over: the worker takes another. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.w.sessions--;
  }

  /** The stream ended early: the worker drops the session (and closes its file). */
  abort(): void {
    if (!this.open) return;
    this.close();
    try { this.w.post({ op: 'abort', id: this.id }); } catch { /* the worker is gone */ }
  }
}

/** Chunks in flight to the worker per stream: reading the next overlaps work on the current. */
const IN_FLIGHT_MAX = 4;

/**
 * Pieces of repo bytes in flight to a worker writing a file: a 1 MiB piece of zstd can hold 20
 * MiB of content, all of it held until written, so few.
 */
const WRITE_IN_FLIGHT_MAX = 2;

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
  private readonly session: PoolSession;

  constructor(private readonly w: PoolWorker, readonly mode: PoolMode, level: number) {
    super({ highWaterMark: 1024 * 1024 });
    w.sessions++;
    this.session = new PoolSession(w, this.id);
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
      this.session.close();
      if (m.out && m.out.length > 0) this.push(Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength));
      this.done = m.result;
    })().then(() => cb(), (err: Error) => cb(err));
  }


  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.session.abort();
    cb(err);
  }
}

/**
 * A file read on a worker: each read asks the worker for the next piece and gets back its repo
 * bytes (compressed, or the file's own bytes moved, not copied). Two pieces in flight keep the
 * worker busy while this thread sends the last one.
 */
export class PoolFileReader extends Readable {
  private seq = 1;
  private inFlight = 0;
  private ended = false;
  private done: PoolResult | undefined;
  private readonly session: PoolSession;

  constructor(private readonly w: PoolWorker, private readonly id: number, private readonly file: string) {
    super({ highWaterMark: 2 * FILE_READ_BYTES });
    this.session = new PoolSession(w, id);
  }

  result(): PoolResult {
    if (!this.done) throw new InternalError('pool file result asked before the file was read');
    return this.done;
  }

  override _read(): void {
    this.ask();
  }

  /** Asks the worker for the next pieces, two in flight at most. */
  private ask(): void {
    while (!this.ended && this.inFlight < 2) {
      this.inFlight++;
      let sent: Promise<WorkerReply>;
      try {
        sent = this.w.post({ op: 'readNext', id: this.id, seq: this.seq++, bytes: FILE_READ_BYTES })!;
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      sent.then((m) => {
        this.inFlight--;
        if (this.ended || this.destroyed) return;
        if (m.error !== undefined) { this.destroy(replyError(m, `'${this.file}'`, false)); return; }
        let more = true;
        if (m.out) {
          // This output's memory is its own (moved or cloned here): a frame's headroom is free.
          const out = Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength);
          chunkHeadroomMark(out);
          more = this.push(out);
        }
        if (m.result) {
          this.ended = true;
          this.done = m.result;
          this.session.close();
          this.push(null);
        } else if (more && this.inFlight === 0) {
          // Nothing came out of this piece (zstd holds it) and nothing is asked: ask again.
          this.ask();
        }
      }, (err: Error) => { this.inFlight--; this.destroy(err); });
    }
  }


  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (this.ended) this.session.close(); else this.session.abort();
    this.ended = true;
    cb(err);
  }
}

/**
 * A file written on a worker: repo bytes go over, the worker decompresses, hashes and writes them
 * (fsync in the background, see `FilterPool.syncAll`); `result()` gives both sides' hashes and sizes.
 */
export class PoolFileWriter extends Writable {
  /** The worker writes the file with O_DIRECT (asked for, and taken by the file system). */
  direct = false;
  private seq = 1;
  private inFlight = 0;
  private waiting: ((err?: Error | null) => void) | undefined;
  private failure: Error | undefined;
  private done: PoolResult | undefined;
  private readonly session: PoolSession;

  constructor(private readonly w: PoolWorker, private readonly id: number, private readonly file: string, private readonly mode: 'decompress' | 'hash',
    private readonly fileMode: number, private readonly mtime: number | undefined) {
    super({ highWaterMark: FILE_READ_BYTES });
    this.session = new PoolSession(w, id);
  }

  result(): PoolResult {
    if (!this.done) throw new InternalError('pool file result asked before the file was written');
    return this.done;
  }

  private check(m: WorkerReply): WorkerReply {
    if (m.error !== undefined) throw m.zstdData || (this.mode === 'decompress' && !m.errno) ? new ZstdDataError(`zstd data is damaged: ${m.error}`) : replyError(m, `'${this.file}'`, true);
    return m;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.failure) { cb(this.failure); return; }
    this.inFlight++;
    let sent: Promise<WorkerReply>;
    try {
      sent = this.w.post({ op: 'data', id: this.id, seq: this.seq++ }, undefined, [chunk])!;
    } catch (err) {
      cb(err as Error);
      return;
    }
    sent.then((m) => this.check(m)).then(() => { this.inFlight--; }, (err: Error) => { this.inFlight--; this.failure ??= err; })
      .finally(() => {
        const w = this.waiting;
        if (w && (this.failure || this.inFlight < WRITE_IN_FLIGHT_MAX)) { this.waiting = undefined; w(this.failure); }
      });
    if (this.inFlight < WRITE_IN_FLIGHT_MAX) cb(); else this.waiting = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.failure) { cb(this.failure); return; }
    (async () => {
      // With an mtime the worker also sets mode and times before the (background) fsync.
      const m = this.check(await this.w.post({ op: 'end', id: this.id, seq: this.seq++, path: this.file, fileMode: this.fileMode,
        ...(this.mtime !== undefined ? { mtime: this.mtime } : {}) })!);
      // Replies come in order: every piece before the end has been answered.
      if (this.failure) throw this.failure;
      this.done = m.result;
      this.session.close();
    })().then(() => cb(), (err: Error) => cb(err));
  }


  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.session.abort();
    cb(err);
  }
}
