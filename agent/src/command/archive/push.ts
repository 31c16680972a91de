import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ArchiveStageMissingError, CHUNK_SIZE, FileMissingError, FormatError, compressFilters, encryptBuffer, encryptFilters, errorFromGrpc, grpcChunkWriter, grpcClientStream, grpcDeadline, grpcWrite,
  log, sha256File, walFileKind, zstdCompressBuffer,
} from '@openrds/common';
import { Readable, Writable } from 'node:stream';
import type { StagedPrefix } from '../../daemon/wal-stream';
import { archivePushStream } from './push-stream';
import type { AgentGatewayClient, ArchivePushHeader, ArchivePushMessage, ArchivePushResult__Output, CipherDataKey, CipherKey__Output, CompressType, FilterPool } from '@openrds/common';

/** How long the archive key of a stanza is reused before it is asked again (a key rotate takes effect within it). */
const ARCHIVE_KEY_TTL_MS = 30_000;
/** WAL files up to this size are read and compressed whole (segments are 16 MiB by default, 1 GiB at most). */
const WHOLE_MAX = 64 * 1024 * 1024;
const archiveKeys = new Map<string, { key: CipherDataKey | undefined; at: number }>();

/**
 * The key new WAL of the stanza is encrypted with, from the repo-server (undefined: the
 * repository is not encrypted). Kept for a short while so that a busy daemon asks rarely.
 */
export async function archiveKeyGet(client: AgentGatewayClient, stanza: string, timeoutMs: number): Promise<CipherDataKey | undefined> {
  const cached = archiveKeys.get(stanza);
  if (cached && Date.now() - cached.at < ARCHIVE_KEY_TTL_MS) return cached.key;
  const reply = await new Promise<CipherKey__Output>((resolve, reject) => {
    client.archiveKey({ stanza }, { deadline: grpcDeadline(timeoutMs) }, (err, r) => (err || !r ? reject(err ?? new Error('no reply')) : resolve(r)));
  });
  const key = reply.id ? { id: reply.id, key: Buffer.from(reply.key) } : undefined;
  archiveKeys.set(stanza, { key, at: Date.now() });
  return key;
}

/** A staged push compresses a rest up to this size on the main thread (a few ms), a longer one on the pool. */
const TAIL_HERE_MAX = 1024 * 1024;

export interface ArchivePushOptions {
  stanza: string;
  walPath: string;             // absolute path of the file PostgreSQL asks to archive
  compressType: CompressType;
  compressLevel: number;
  agentId: string;
  timeoutMs: number;
  /** Worker threads for sha256 and zstd (the daemon has them; a short-lived command does not). */
  pool?: FilterPool;
  /** The daemon's staged start of the segment (archive-push-stream), if any: only the rest is sent. */
  staged?: () => Promise<StagedPrefix | undefined>;
}

/**
 * Pushes one WAL file (segment, .partial, .history or .backup) to the repo-server: hashes it,
 * then streams it compressed. Resolves only once the repo-server has it durably stored; a
 * duplicate with the same content resolves with a warning, anything else rejects.
 */
export async function archivePushFile(client: AgentGatewayClient, opts: ArchivePushOptions): Promise<ArchivePushResult__Output> {
  const walName = path.basename(opts.walPath);
  if (!walFileKind(walName)) {
    throw new FormatError(`'${walName}' is not a WAL file name`, { hint: 'archive-push expects %p of archive_command' });
  }
  if (opts.staged && opts.pool && opts.compressType === 'zst' && walFileKind(walName) === 'segment') {
    const tTake = Date.now();
    const prefix = await opts.staged();
    if (prefix) {
      const r = await archivePushStaged(client, opts, opts.pool, walName, prefix, Date.now() - tTake).catch((err: unknown) => {
        if (!(err instanceof ArchiveStageMissingError)) throw err;
        log.detail(`archive-push '${walName}': ${err.message}: pushed whole`);
        return undefined;
      });
      if (r) return r;
    }
  }
  const t0 = Date.now();
  let digest: { sha256: string; size: number };
  // A WAL file with the daemon's pool and zstd: read, hashed and compressed by a worker in one
  // message (streaming it through the pool costs per-chunk messages; reading it here, a 16 MiB
  // buffer per push and the main thread's time).
  let whole: Buffer[] | undefined;
  const missing = (): FileMissingError => new FileMissingError(`WAL file '${opts.walPath}' does not exist`, { hint: 'archive-push expects %p of archive_command' });
  try {
    if (opts.pool && opts.compressType === 'zst' && (await fs.promises.stat(opts.walPath)).size <= WHOLE_MAX) {
      const r = await opts.pool.compressFile(opts.walPath, opts.compressLevel, WHOLE_MAX);
      if (!r) throw missing();
      digest = { sha256: r.sha256, size: r.size };
      whole = r.frames;
    } else {
      digest = opts.pool ? await poolDigest(opts.pool, opts.walPath) : await sha256File(opts.walPath);
    }
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? missing() : err;
  }
  const t1 = Date.now();
  let t2 = 0;
  try {
    const cipher = await archiveKeyGet(client, opts.stanza, opts.timeoutMs).catch((err: unknown) => { throw errorFromGrpc(err); });
    const result = await archivePushSend(client, opts, { walName, size: digest.size, sha256: digest.sha256, staged: 0 }, async (sink) => {
      if (whole) {
        // Encrypted repository: sealed here, so only ciphertext leaves the database host.
        // Plain, each frame is a message, encoded in place (see chunk-encode.ts).
        await pipeline(Readable.from(cipher ? chunksOf(encryptBuffer(cipher, Buffer.concat(whole))) : whole), sink);
      } else {
        const filters = [
          ...(opts.pool && opts.compressType === 'zst'
            ? [opts.pool.transform('compress', opts.compressLevel)]
            : compressFilters(opts.compressType, opts.compressLevel).map((f) => f.stream)),
          ...encryptFilters(cipher).map((f) => f.stream),
        ];
        await pipeline([fs.createReadStream(opts.walPath), ...filters, sink]);
      }
      t2 = Date.now();
    });
    log.detail(`archive-push '${walName}': ${Date.now() - t0} ms (read+sha256(+compress) ${t1 - t0} ms, (compress+)send ${t2 - t1} ms, repo-server store ${Date.now() - t2} ms)`);
    return result;
  } finally {
    // The frames' memory serves the next push's once this one has returned (see framesRecycle).
    if (whole) opts.pool!.framesRecycle(whole);
  }
}

function chunksOf(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let o = 0; o < bytes.length; o += CHUNK_SIZE) chunks.push(bytes.subarray(o, o + CHUNK_SIZE));
  return chunks;
}

/** What a push says of its file: name, uncompressed size and sha256, and the bytes at its start taken from the stage. */
type PushedFile = { walName: string; size: number; sha256: string; staged: number };

/** The header of a push (ArchivePush's first message, or an ArchivePushes message's). */
function archivePushHeader(opts: ArchivePushOptions, file: PushedFile): ArchivePushHeader {
  return { stanza: opts.stanza, walName: file.walName, size: file.size, sha256: file.sha256, compressType: opts.compressType, agentId: opts.agentId, staged: file.staged };
}

/** One ArchivePush call: the header, then what `body` writes to the chunk sink; resolves with the repo-server's answer. */
async function archivePushSend(client: AgentGatewayClient, opts: ArchivePushOptions,
  file: PushedFile, body: (sink: Writable) => Promise<void>): Promise<ArchivePushResult__Output> {
  const { call, response, failure } = grpcClientStream<ArchivePushMessage, ArchivePushResult__Output>(
    (cb) => client.archivePush({ deadline: grpcDeadline(opts.timeoutMs) }, cb));
  await grpcWrite(call, { header: archivePushHeader(opts, file) });
  try {
    await body(grpcChunkWriter<ArchivePushMessage>(call, (data) => ({ chunk: { data } })));
    call.end();
  } catch (err) {
    // When the repo-server refused the file, its reason is the error to report.
    call.cancel();
    throw failure() ?? err;
  }
  return response;
}

/**
 * The push of a segment whose start the repo-server holds staged: the finished file is read and
 * its start compared with the staged bytes (undefined when they differ or the file is gone: the
 * caller pushes it whole); the rest is compressed and sent with the sha256 of the whole file.
 */
async function archivePushStaged(client: AgentGatewayClient, opts: ArchivePushOptions, pool: FilterPool, walName: string,
  prefix: StagedPrefix, takeMs: number): Promise<ArchivePushResult__Output | undefined> {
  const t0 = Date.now();
  // Staged parts are not sealed: the repo-server stages nothing for an encrypted repository, and
  // refuses the push of a stage if its repository is encrypted by then (the file is pushed whole,
  // sealed). No ArchiveKey round trip here: it is on the path PostgreSQL waits on.
  // A prefix staged below PostgreSQL's flush position is final: only the rest is read. One
  // staged by the page headers is compared with the finished file first.
  const file = await segmentRead(opts.walPath, prefix.bytes ? 0 : prefix.size);
  if (!file) return undefined;
  let sha256: string, out: Buffer, size: number;
  try {
    let tail: Buffer;
    if (prefix.bytes) {
      const bytes = file.bytes;
      if (bytes.length < prefix.size || !bytes.subarray(0, prefix.size).equals(prefix.bytes)) {
        log.detail(`archive-push '${walName}': the file differs from its staged start: pushed whole`);
        return undefined;
      }
      tail = bytes.subarray(prefix.size);
    } else {
      tail = file.bytes;
    }
    size = prefix.size + tail.length;
    sha256 = prefix.hash.update(tail).digest('hex');
    // A short tail is compressed here: a worker may still be busy with a part the daemon staged.
    out = tail.length === 0 ? Buffer.alloc(0) : tail.length <= TAIL_HERE_MAX ? zstdCompressBuffer(tail, opts.compressLevel) : await pool.compressBytes(tail, opts.compressLevel);
  } finally {
    file.release();
  }
  const t1 = Date.now();
  const pushed: PushedFile = { walName, size, sha256, staged: prefix.size };
  // On the client's ArchivePushes stream; as a call of its own to a repo-server without it.
  const stream = archivePushStream(client);
  let result: ArchivePushResult__Output | undefined;
  if (!stream.unimplemented) {
    result = await stream.push(archivePushHeader(opts, pushed), out, opts.timeoutMs).catch((err: unknown) => {
      if (!stream.unimplemented) throw err;
      return undefined;
    });
  }
  result ??= await archivePushSend(client, opts, pushed, (sink) => pipeline(Readable.from(chunksOf(out)), sink));
  log.detail(`archive-push '${walName}': ${Date.now() - t0} ms, ${prefix.size} bytes staged ahead, ${size - prefix.size} sent now ` +
    `(stage taken ${takeMs} ms, read${prefix.bytes ? '+compare' : ''}+compress ${t1 - t0} ms, send+repo-server store ${Date.now() - t1} ms)`);
  return result;
}

/**
 * Buffers a staged push reads its segment into, kept for the next push: a fresh 16 MiB buffer
 * costs thousands of page faults (as long as the read itself), and a read into a buffer
 * of the file's size is one system call (readFile takes 512 KiB per trip through libuv).
 */
const segmentBuffers: Buffer[] = [];
const SEGMENT_BUFFERS_KEPT = 1;

/** A staged push reads a rest up to this size with synchronous calls (from the page cache: well under a millisecond per MiB). */
const REST_SYNC_MAX = 4 * 1024 * 1024;

type SegmentBytes = { bytes: Buffer; release: () => void };

/** A buffer of at least `want` bytes from `segmentBuffers`, and the result of a read into its first `got` bytes. */
function segmentBuffer(want: number): { buf: Buffer; done: (got: number) => SegmentBytes } {
  let buf = segmentBuffers.pop();
  if (!buf || buf.length < want) buf = Buffer.allocUnsafeSlow(Math.max(want, 1));
  const kept = buf;
  return {
    buf: kept,
    done: (got) => ({ bytes: kept.subarray(0, got), release: () => { if (segmentBuffers.length < SEGMENT_BUFFERS_KEPT) segmentBuffers.push(kept); } }),
  };
}

/**
 * The file from byte `from` on (the whole file by default) in a reused buffer (release() gives it
 * back), or undefined when it cannot be read or is shorter than `from`. A short rest is read with
 * synchronous calls: four trips through libuv (open, stat, read, close) each wait for the main
 * thread on a busy host, and PostgreSQL waits on this push.
 */
async function segmentRead(file: string, from = 0): Promise<SegmentBytes | undefined> {
  if (from > 0) {
    let fd: number;
    try { fd = fs.openSync(file, 'r'); } catch { return undefined; }
    try {
      const want = fs.fstatSync(fd).size - from;
      if (want < 0) return undefined;
      if (want <= REST_SYNC_MAX) {
        const { buf, done } = segmentBuffer(want);
        let got = 0;
        for (let n = 1; got < want && n > 0; got += n) n = fs.readSync(fd, buf, got, want - got, from + got);
        return done(got);
      }
    } catch {
      return undefined;
    } finally {
      fs.closeSync(fd);
    }
  }
  let fh: fs.promises.FileHandle;
  try { fh = await fs.promises.open(file, 'r'); } catch { return undefined; }
  try {
    const { size } = await fh.stat();
    if (size < from) return undefined;
    const want = size - from;
    const { buf, done } = segmentBuffer(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(buf, got, want - got, from + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return done(got);
  } catch {
    return undefined;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function poolDigest(pool: FilterPool, file: string): Promise<{ sha256: string; size: number }> {
  const t = pool.transform('digest');
  await pipeline(fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), t, new Writable({ write: (_c, _e, cb) => cb() }));
  return { sha256: t.result().inSha256, size: t.result().inSize };
}
