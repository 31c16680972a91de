import type * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CHUNK_SIZE, ChecksumError, GrpcChunkLane, forEachLimit, OpenrdsError, ProtocolError, ChecksumFilter, SizeFilter, checksumOf, cipherIsEncrypted, decryptBuffer, encryptBuffer,
  errorToDetail, errorToGrpc, errorWrap, grpcChunkReader, grpcChunkWriter, grpcMessages, log,
} from '@openrds/common';
import type {
  AgentGatewayHandlers, AgentMessage__Output, ArchivePushHeader__Output, ArchivePushResult, ArchivePushesMessage__Output, ArchivePushesReply, ArchiveKeyRequest__Output, ArchiveStageRequest__Output, ArchiveStageResult, CipherKey, ArchiveGetMessage, ArchivePushMessage__Output, DataChunk, GetFilesMessage, GetFilesRequest__Output,
  PutFileMessage__Output, PutFileTrailer__Output, ServerMessage, CompressType, ChecksumType,
} from '@openrds/common';
import type { ArchivePushRequest } from '../command/archive/archive-store';
import { stageRefused } from '../command/archive/archive-stage';
import { Repo } from '../repo/repo';
import type { RepoHandle } from '../repo/repo-set';
import { AgentConnection, AgentRegistry } from './agent-registry';
import type { PeerCall, TlsAuthorizer } from './tls-auth';
import { TransferRegistry, type BackupFileStored } from './transfers';
import { serverPool } from '../repo/pool';

/** Raised inside a pipeline when the agent reports the file vanished: nothing must be stored. */
class FileVanished extends Error {}

/** The AgentGateway service: agent sessions, backup/restore file streams, WAL push and get. */
export function gatewayHandlers(deps: { repos: readonly RepoHandle[]; agents: AgentRegistry; transfers: TransferRegistry;
  stopCheck: (stanza: string) => void; auth: TlsAuthorizer }): AgentGatewayHandlers {
  const { repos, agents, transfers, auth } = deps;

  /** One push (ArchivePush's call or a message of ArchivePushes): checked, stored, answered. */
  const archivePushOne = async (call: PeerCall, method: string, header: ArchivePushHeader__Output, source: Readable): Promise<ArchivePushResult> => {
    auth.stanzaCheck(call, method, header.stanza);
    deps.stopCheck(header.stanza);
    const started = Date.now();
    const req = {
      stanza: header.stanza, walName: header.walName, size: header.size, sha256: header.sha256,
      compressType: header.compressType as CompressType, staged: header.staged, agentId: header.agentId,
    };
    if (req.staged && repos.length !== 1) throw stageRefused('the repo-server stores WAL in several repositories');
    const result = await archivePushAll(repos, req, source);
    log.detail(`archive-push '${header.walName}' for stanza '${header.stanza}' stored as '${result.key}' (${Date.now() - started} ms from its header)`);
    return { duplicate: result.duplicate, warning: result.warning, repoKey: result.key };
  };

  return {
    Session(call: grpc.ServerDuplexStream<AgentMessage__Output, ServerMessage>) {
      let conn: AgentConnection | undefined;
      call.on('data', (msg: AgentMessage__Output) => {
        if (msg.hello) {
          if (conn) return;
          try {
            // An agent registers only stanzas its certificate may serve: all of them, or none.
            for (const s of msg.hello.stanzas) auth.stanzaCheck(call, 'Session', s.stanza);
          } catch (err) {
            call.emit('error', errorToGrpc(err));
            return;
          }
          conn = new AgentConnection(msg.hello, call, auth.peerName(call));
          agents.add(conn);
          call.write({ helloAck: { serverVersion: msg.hello.version, sessionId: conn.sessionId } });
        } else if (msg.event) {
          conn?.onEvent(msg.event);
        } else if (msg.heartbeat && conn) {
          conn.lastContact = Date.now();
          if (msg.heartbeat.archiveSpool) conn.archiveSpool = { ...msg.heartbeat.archiveSpool, at: Date.now() };
        }
      });
      const end = (reason: string) => () => { if (conn) agents.remove(conn, reason); };
      call.on('end', () => { end('session closed')(); call.end(); });
      call.on('error', (err: Error) => end(err.message)());
      call.on('cancelled', end('session cancelled'));
    },

    PutBackupFile(call, callback) {
      void (async () => {
        const iter = grpcMessages<PutFileMessage__Output>(call);
        // Files of the call are stored one after the other; a few may still be syncing while the
        // next arrives. The call succeeds only once every one of them is durable.
        const syncing = new Set<Promise<void>>();
        const failures: unknown[] = [];
        let current: IncomingFile | undefined;
        let small: SmallPuts | undefined;
        let files = 0, repoSize = 0;
        let jobId: string | undefined;
        for (;;) {
          if (failures.length > 0) throw failures[0];
          const next = await iter.next();
          if (next.done) break;
          const m = next.value;
          if (m.header) {
            if (current) throw new ProtocolError(`file '${m.header.name}' started before '${current.name}' ended`);
            if (jobId !== undefined && m.header.jobId !== jobId) throw new ProtocolError('one PutBackupFile call carries the files of one job');
            const transfer = transfers.get(m.header.jobId, 'backup');
            if (jobId === undefined) auth.stanzaCheck(call, 'PutBackupFile', transfer.stanza);
            jobId = m.header.jobId;
            const key = transfer.keyFor(m.header.name);
            if (!key) throw new ProtocolError(`file '${m.header.name}' is not part of backup job '${m.header.jobId}'`);
            small ??= new SmallPuts(transfer.repo.storage);
            current = incomingFile(m.header.name, key, transfer.repo, small, transfer.checksumType, (r) => {
              files++;
              repoSize += r.repoSize;
              transfer.onStored(m.header!.name, r);
            });
          } else if (m.chunk) {
            if (!current) throw new ProtocolError('a data chunk arrived outside of a file');
            await current.write(m.chunk.data);
          } else if (m.trailer) {
            if (!current) throw new ProtocolError('a trailer arrived outside of a file');
            const done = current.end(m.trailer);
            current = undefined;
            const tracked = done.catch((err: unknown) => { failures.push(err); }).finally(() => syncing.delete(tracked));
            syncing.add(tracked);
            if (syncing.size >= PUT_SYNCING_MAX) {
              // Small files wait in a batch: it goes now, or the oldest file to finish could be one of them.
              small?.flush();
              await Promise.race(syncing);
            }
          }
        }
        if (current) {
          current.abort();
          throw new ProtocolError(`upload of '${current.name}' ended without a trailer`);
        }
        small?.flush();
        await Promise.all(syncing);
        if (failures.length > 0) throw failures[0];
        return { repoSize, files };
      })().then((r) => callback(null, r), (err) => callback(errorToGrpc(err) as grpc.ServiceError));
    },

    GetBackupFile(call: grpc.ServerWritableStream<{ jobId: string; repoKey: string }, DataChunk>) {
      void (async () => {
        const transfer = transfers.get(call.request.jobId, 'restore');
        auth.stanzaCheck(call, 'GetBackupFile', transfer.stanza);
        if (!transfer.allowed.has(call.request.repoKey)) {
          throw new ProtocolError(`repo file '${call.request.repoKey}' is not part of restore job '${call.request.jobId}'`);
        }
        await pipeline(await transfer.repo.storage.newRead(call.request.repoKey), grpcChunkWriter<DataChunk>(call, (data) => ({ data })));
        call.end();
      })().catch((err) => call.emit('error', errorToGrpc(err)));
    },

    GetBackupFiles(call: grpc.ServerWritableStream<GetFilesRequest__Output, GetFilesMessage>) {
      void (async () => {
        const transfer = transfers.get(call.request.jobId, 'restore');
        auth.stanzaCheck(call, 'GetBackupFiles', transfer.stanza);
        const refused = call.request.repoKeys.find((k) => !transfer.allowed.has(k));
        if (refused !== undefined) throw new ProtocolError(`repo file '${refused}' is not part of restore job '${call.request.jobId}'`);
        const { repo } = transfer;
        const keys = call.request.repoKeys;
        const lane = new GrpcChunkLane<GetFilesMessage>(call);
        // The next files are opened (and small ones on a local disk read whole) ahead of the one
        // sent, so that files follow each other without a pause: an object store answers each
        // request after a round trip, and a disk read waits for libuv's threads. Bodies of
        // streams opened ahead wait, held back.
        const posix = repo.storage.type === 'posix';
        const ahead = posix ? READ_AHEAD_POSIX : READ_AHEAD_OBJECT_STORE;
        const opened = new Map<number, Promise<{ data: Buffer } | { stream: Readable }>>();
        // On posix, small files are read in batches by a worker (one message for many): the main
        // thread then only sends them. A batch is read while the one before is sent.
        const getMany = posix ? repo.storage.getMany?.bind(repo.storage) : undefined;
        const batches = new Map<number, Promise<(Buffer | undefined)[]>>();
        const batchOf = (b: number): Promise<(Buffer | undefined)[]> => {
          let p = batches.get(b);
          if (!p) {
            p = getMany!(keys.slice(b * READ_BATCH_FILES, (b + 1) * READ_BATCH_FILES), { pool: serverPool(), maxSize: SMALL_UPLOAD_MAX });
            p.catch(() => undefined);
            batches.set(b, p);
            batches.delete(b - 2);
          }
          return p;
        };
        const open = (i: number): void => {
          if (i >= keys.length || opened.has(i)) return;
          const key = keys[i]!;
          const p = (async () => {
            if (getMany) {
              const data = (await batchOf(Math.floor(i / READ_BATCH_FILES)))[i % READ_BATCH_FILES];
              if (data) return { data };
            } else if (posix) {
              const info = await repo.storage.info(key);
              // A small file is read whole: no stream set up for a few kilobytes.
              if (info && info.type === 'file' && info.size <= SMALL_UPLOAD_MAX) return { data: await repo.storage.get(key) };
            }
            return { stream: await repo.storage.newRead(key) };
          })();
          p.catch(() => undefined);
          opened.set(i, p);
        };
        try {
          for (let i = 0; i < keys.length; i++) {
            const repoKey = keys[i]!;
            for (let j = i; j <= i + ahead; j++) open(j);
            if (getMany && (i % READ_BATCH_FILES) * 2 >= READ_BATCH_FILES) void batchOf(Math.floor(i / READ_BATCH_FILES) + 1);
            await lane.write({ start: { repoKey } }, 0);
            const got = await opened.get(i)!;
            opened.delete(i);
            if ('data' in got) {
              const { data } = got;
              for (let offset = 0; offset < data.length; offset += CHUNK_SIZE) await lane.write({ chunk: { data: data.subarray(offset, offset + CHUNK_SIZE) } }, Math.min(CHUNK_SIZE, data.length - offset));
              await lane.write({ end: { repoSize: data.length } }, 0);
              continue;
            }
            const size = new SizeFilter();
            await pipeline(got.stream, size.stream, lane.sink((data) => ({ chunk: { data } })));
            await lane.write({ end: { repoSize: size.result() } }, 0);
          }
        } finally {
          // Reads opened ahead of a failure are closed.
          for (const p of opened.values()) void p.then((r) => { if ('stream' in r) r.stream.destroy(); }, () => undefined);
        }
        call.end();
      })().catch((err) => call.emit('error', errorToGrpc(err)));
    },

    ArchivePush(call, callback) {
      void (async () => {
        const iter = grpcMessages<ArchivePushMessage__Output>(call);
        const first = await iter.next();
        const header = first.done ? undefined : first.value.header;
        if (!header) throw new ProtocolError('ArchivePush must start with a header');
        return archivePushOne(call, 'ArchivePush', header, grpcChunkReader(iter, (m) => m.chunk?.data).on('error', () => undefined));
      })().then((r) => callback(null, r), (err) => {
        const e = errorWrap(err);
        log.warn(`archive-push refused: ${e.message}`);
        callback(errorToGrpc(e) as grpc.ServiceError);
      });
    },

    ArchivePushes(call) {
      // Each message is a push of its own, run as it comes (the agent's lanes send several); the
      // stream ends once the agent ended it and every answer is written.
      let running = 0, ended = false;
      const endIfDone = (): void => { if (ended && running === 0) call.end(); };
      call.on('data', (msg: ArchivePushesMessage__Output) => {
        running++;
        void (async () => {
          if (!msg.header) throw new ProtocolError('an ArchivePushes message must have a header');
          return archivePushOne(call, 'ArchivePushes', msg.header, Readable.from(msg.data.length > 0 ? [msg.data] : []));
        })().then((result): ArchivePushesReply => ({ id: msg.id, result }), (err): ArchivePushesReply => {
          const e = errorWrap(err);
          log.warn(`archive-push refused: ${e.message}`);
          return { id: msg.id, error: errorToDetail(e) };
        }).then((reply) => {
          running--;
          if (!call.cancelled && call.writable) call.write(reply);
          endIfDone();
        });
      });
      call.on('end', () => { ended = true; endIfDone(); });
      call.on('error', () => undefined);
    },

    ArchiveKey(call: grpc.ServerUnaryCall<ArchiveKeyRequest__Output, CipherKey>, callback: grpc.sendUnaryData<CipherKey>) {
      void (async () => {
        auth.stanzaCheck(call, 'ArchiveKey', call.request.stanza);
        deps.stopCheck(call.request.stanza);
        // The agent seals WAL with the first encrypted repository's key; the repo-server re-seals it for the others.
        const sealing = repos.find((h) => h.repo.cipher.enabled);
        if (sealing) await sealing.repo.archiveInfoLoad(call.request.stanza);
        const key = sealing ? await sealing.repo.cipher.archiveKey(call.request.stanza) : undefined;
        return key ?? { id: '', key: Buffer.alloc(0) };
      })().then((r) => callback(null, r), (err) => callback(errorToGrpc(err) as grpc.ServiceError));
    },

    ArchiveStage(call: grpc.ServerUnaryCall<ArchiveStageRequest__Output, ArchiveStageResult>, callback: grpc.sendUnaryData<ArchiveStageResult>) {
      void (async () => {
        const r = call.request;
        auth.stanzaCheck(call, 'ArchiveStage', r.stanza);
        deps.stopCheck(r.stanza);
        // Several repositories take each WAL file whole (re-sealed per repository): nothing is staged.
        if (repos.length !== 1) throw stageRefused('the repo-server stores WAL in several repositories');
        const { repo, archive } = repos[0]!;
        const staged = await archive.stage(() => repo.archiveInfoRecent(r.stanza),
          { stanza: r.stanza, walName: r.walName, agentId: r.agentId, offset: r.offset, size: r.size, data: r.data });
        return { staged };
      })().then((r) => callback(null, r), (err) => callback(errorToGrpc(err) as grpc.ServiceError));
    },

    ArchiveGet(call: grpc.ServerWritableStream<{ stanza: string; walName: string }, ArchiveGetMessage>) {
      void (async () => {
        auth.stanzaCheck(call, 'ArchiveGet', call.request.stanza);
        const found = await archiveFind(repos, call.request.stanza, call.request.walName);
        if (!found) {
          call.write({ header: { found: false, sha256: '', compressType: '', archiveId: '', size: -1 } });
          call.end();
          return;
        }
        const { repo, hit } = found;
        // The key of this file only, read from its header: the agent decrypts.
        const cipher = await repo.cipher.objectKey(call.request.stanza, repo.storage, hit.key);
        call.write({ header: { found: true, sha256: hit.sha256, compressType: hit.compressType, archiveId: hit.archiveId, size: hit.size, ...(cipher ? { cipher } : {}) } });
        await pipeline(await repo.storage.newRead(hit.key), grpcChunkWriter<ArchiveGetMessage>(call, (data) => ({ chunk: { data } })));
        call.end();
      })().catch((err) => call.emit('error', errorToGrpc(err)));
    },
  };
}

/**
 * Files of one PutBackupFile call that may be syncing to disk while the next arrives (small ones
 * are stored in batches: a few batches in flight).
 */
const PUT_SYNCING_MAX = 256;

/** Small files of a batch stored at once (posix: by a worker, in one message), at most so many bytes. */
const SMALL_BATCH_FILES = 64;
const SMALL_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Collects the small files of an upload and stores them in batches (Storage.putMany): per file,
 * the main thread only checks its bytes. add() resolves once the file's batch is durable.
 */
class SmallPuts {
  private items: { key: string; data: Buffer; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private bytes = 0;

  constructor(private readonly storage: Repo['storage']) {}

  add(key: string, data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // A batch stays within SMALL_BATCH_BYTES (it then fits a worker's inbox, copied rather than allocated anew).
      if (this.bytes + data.length > SMALL_BATCH_BYTES) this.flush();
      this.items.push({ key, data, resolve, reject });
      this.bytes += data.length;
      if (this.items.length >= SMALL_BATCH_FILES || this.bytes >= SMALL_BATCH_BYTES) this.flush();
    });
  }

  /** Stores what was collected so far. */
  flush(): void {
    if (this.items.length === 0) return;
    const batch = this.items;
    this.items = [];
    this.bytes = 0;
    const stored = this.storage.putMany
      ? this.storage.putMany(batch, { ...BACKUP_FILE_WRITE, pool: serverPool() })
      : forEachLimit(batch, PUT_CONCURRENCY, (b) => this.storage.put(b.key, b.data, BACKUP_FILE_WRITE));
    stored.then(() => { for (const b of batch) b.resolve(); }, (err: unknown) => { for (const b of batch) b.reject(err); });
  }
}

/** Small files stored at once by a driver without putMany (an object store: each is a request). */
const PUT_CONCURRENCY = 16;

interface IncomingFile {
  name: string;
  /** Feeds bytes of the file, honouring the storage write's backpressure. */
  write(data: Buffer): Promise<void>;
  /** The trailer arrived: resolves once the file is durable (or was reported missing). */
  end(trailer: PutFileTrailer__Output): Promise<void>;
  abort(): void;
}

/**
 * Backup files skip the directory fsync of each write: the backup syncs its set's directories
 * once (Storage.pathSync) before its manifest is saved, and a resume re-checks what it keeps.
 */
const BACKUP_FILE_WRITE = { noSyncPath: true } as const;

/** Reads a restore lane keeps open ahead of the one it sends, on an object store and on a local disk. */
const READ_AHEAD_OBJECT_STORE = 8;
const READ_AHEAD_POSIX = 16;
/** Files of a restore read per worker message on posix (small ones whole; larger ones are streamed). */
const READ_BATCH_FILES = 64;

/** Uploads up to this size are collected in memory and stored with one put (no stream). */
const SMALL_UPLOAD_MAX = 1024 * 1024;

/**
 * One file of an upload on its way into the repo: its bytes are hashed and counted, checked
 * against the trailer's checksum (of the job's type) and size, and committed (complete or missing) by the storage. A
 * small file is collected and stored whole; a large one streams into a storage write.
 */
function incomingFile(name: string, key: string, repo: Repo, small: SmallPuts, checksumType: ChecksumType, onStored: (r: BackupFileStored) => void): IncomingFile {
  let buffered: Buffer[] | undefined = [];
  let bufferedBytes = 0;
  let streaming: { input: PassThrough; stored: Promise<void>; sha: ChecksumFilter; size: SizeFilter; trailer?: PutFileTrailer__Output } | undefined;

  const streamStart = (): NonNullable<typeof streaming> => {
    const st: NonNullable<typeof streaming> = {
      input: new PassThrough({ highWaterMark: 1024 * 1024 }), sha: new ChecksumFilter(checksumType), size: new SizeFilter(), stored: Promise.resolve(),
    };
    const check = new Transform({
      transform: (chunk: Buffer, _e, cb: TransformCallback) => cb(null, chunk),
      flush: (cb: TransformCallback) => {
        const t = st.trailer;
        if (!t) return cb(new ProtocolError(`upload of '${name}' ended without a trailer`));
        if (t.missing) return cb(new FileVanished());
        const err = uploadCheck(name, t, st.sha.result(), st.size.result());
        cb(err);
      },
    });
    st.stored = pipeline(st.input, st.sha.stream, st.size.stream, check, repo.storage.newWrite(key, BACKUP_FILE_WRITE)).then(
      () => undefined,
      (err: unknown) => { if (!(err instanceof FileVanished)) throw err; });
    st.stored.catch(() => undefined);
    for (const b of buffered ?? []) st.input.write(b);
    buffered = undefined;
    return st;
  };

  return {
    name,
    async write(data: Buffer): Promise<void> {
      if (buffered) {
        buffered.push(data);
        bufferedBytes += data.length;
        if (bufferedBytes <= SMALL_UPLOAD_MAX) return;
        streaming = streamStart();
        return;
      }
      if (streaming!.input.write(data)) return;
      await Promise.race([once(streaming!.input, 'drain'), streaming!.stored]);
    },
    async end(t: PutFileTrailer__Output): Promise<void> {
      if (buffered) {
        if (!t.missing) {
          const data = Buffer.concat(buffered);
          const sha = checksumOf(checksumType, data);
          const err = uploadCheck(name, t, sha, data.length);
          if (err) throw err;
          await small.add(key, data);
          onStored({ missing: false, size: t.size, sha256: t.sha256, repoSize: data.length, repoSha256: sha });
        } else {
          onStored({ missing: true, size: t.size, sha256: t.sha256, repoSize: 0, repoSha256: '' });
        }
        return;
      }
      const st = streaming!;
      st.trailer = t;
      st.input.end();
      await st.stored;
      onStored({ missing: t.missing, size: t.size, sha256: t.sha256, repoSize: st.size.result(), repoSha256: st.sha.result() });
    },
    abort(): void { streaming?.input.destroy(new ProtocolError(`upload of '${name}' was cut short`)); },
  };
}

/** The bytes that arrived must be the ones the agent hashed and counted. */
function uploadCheck(name: string, t: PutFileTrailer__Output, sha256: string, size: number): Error | undefined {
  if (t.repoSha256 === sha256 && t.repoSize === size) return undefined;
  return new ChecksumError(`upload of '${name}' arrived with checksum ${sha256} size ${size}, but the agent sent checksum ${t.repoSha256} size ${t.repoSize}`);
}

/** Largest WAL file held in memory to store it in several repositories (1 GiB segments are the PostgreSQL maximum). */
const MULTI_REPO_WAL_MAX = 1024 * 1024 * 1024 + 64 * 1024;

/**
 * Stores a pushed WAL file in every repository. One repository: streamed. Several: the file is
 * read once, then stored in each in order, re-sealed for each encrypted repository with its own
 * archive key (the agent sealed it with the first encrypted repository's key). What one
 * repository stored stays when another fails; the push fails then (PostgreSQL retries, and the
 * repositories that have the file answer the retry as a duplicate).
 */
async function archivePushAll(repos: readonly RepoHandle[], req: ArchivePushRequest, source: Readable): Promise<{ duplicate: boolean; warning: string; key: string }> {
  if (repos.length === 1) {
    const { repo, archive } = repos[0]!;
    return archive.push(await repo.archiveInfoRecent(req.stanza), req, source);
  }
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += (chunk as Buffer).length;
    if (total > MULTI_REPO_WAL_MAX) throw new ProtocolError(`WAL file '${req.walName}' is larger than any WAL file PostgreSQL makes`);
    parts.push(chunk as Buffer);
  }
  const sent = Buffer.concat(parts);
  const sealer = repos.find((h) => h.repo.cipher.enabled);
  let plain: Buffer | undefined;
  const plainOf = async (): Promise<Buffer> => {
    if (plain) return plain;
    if (!cipherIsEncrypted(sent)) return (plain = sent);
    if (!sealer) throw new ProtocolError(`WAL file '${req.walName}' arrived encrypted, but no repository is encrypted`);
    return (plain = decryptBuffer((await sealer.repo.cipher.lookup(req.stanza))!, sent, `WAL file '${req.walName}'`));
  };
  const results: { key: number; result?: { duplicate: boolean; warning: string; key: string }; error?: OpenrdsError }[] = [];
  for (const { repo, archive } of repos) {
    try {
      let bytes: Buffer;
      if (repo === sealer?.repo && cipherIsEncrypted(sent)) bytes = sent;
      else if (repo.cipher.enabled) bytes = encryptBuffer((await repo.cipher.archiveKey(req.stanza))!, await plainOf());
      else bytes = await plainOf();
      results.push({ key: repo.key, result: await archive.push(await repo.archiveInfoRecent(req.stanza), req, Readable.from([bytes])) });
    } catch (err) {
      const e = errorWrap(err);
      log.warn(`archive-push '${req.walName}' to repo${repo.key} failed: ${e.message}`);
      results.push({ key: repo.key, error: e });
    }
  }
  const failed = results.filter((r) => r.error);
  const stored = results.filter((r) => r.result);
  if (failed.length > 0) {
    const first = failed[0]!.error!;
    const Cls = first.constructor as new (message: string, opts?: { hint?: string }) => OpenrdsError;
    throw new Cls(`WAL file '${req.walName}' ${stored.length > 0 ? `was stored in ${stored.map((r) => `repo${r.key}`).join(', ')} but ` : ''}not in ${failed.map((r) => `repo${r.key}: ${r.error!.message}`).join('; ')}`,
      { hint: first.hint ?? 'PostgreSQL retries archive_command: once every repository is available the retry completes it' });
  }
  const first = stored[0]!.result!;
  return { duplicate: stored.every((r) => r.result!.duplicate), warning: stored.map((r) => r.result!.warning).filter((w) => w).join('\n'), key: first.key };
}

/**
 * Finds a WAL file in the repositories in order. A repository that cannot be read is skipped
 * with a warning while a later one has the file; when none has it and one failed, that failure
 * is the answer (never "not in the archive", which would end recovery early).
 */
async function archiveFind(repos: readonly RepoHandle[], stanza: string, walName: string):
  Promise<{ repo: Repo; hit: NonNullable<Awaited<ReturnType<RepoHandle['archive']['get']>>> } | undefined> {
  let failure: unknown;
  for (const { repo, archive } of repos) {
    try {
      const hit = await archive.get(await repo.archiveInfoLoad(stanza), stanza, walName);
      if (hit) return { repo, hit };
    } catch (err) {
      if (repos.length === 1) throw err;
      log.warn(`archive-get '${walName}' from repo${repo.key} failed: ${errorWrap(err).message}`);
      failure ??= err;
    }
  }
  if (failure) throw failure;
  return undefined;
}
