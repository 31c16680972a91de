import type * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CHUNK_SIZE, ChecksumError, GrpcChunkLane, ProtocolError, Sha256Filter, SizeFilter, errorToGrpc, errorWrap, grpcChunkReader, grpcChunkWriter,
  grpcMessages, log,
} from '@openrds/common';
import type {
  AgentGatewayHandlers, AgentMessage__Output, ArchiveKeyRequest__Output, CipherKey, ArchiveGetMessage, ArchivePushMessage__Output, DataChunk, GetFilesMessage, GetFilesRequest__Output,
  PutFileMessage__Output, PutFileTrailer__Output, ServerMessage, CompressType,
} from '@openrds/common';
import { ArchiveStore } from '../command/archive/archive-store';
import { Repo } from '../repo/repo';
import { AgentConnection, AgentRegistry } from './agent-registry';
import type { TlsAuthorizer } from './tls-auth';
import { TransferRegistry, type BackupFileStored } from './transfers';

/** Raised inside a pipeline when the agent reports the file vanished: nothing must be stored. */
class FileVanished extends Error {}

/** The AgentGateway service: agent sessions, backup/restore file streams, WAL push and get. */
export function gatewayHandlers(deps: { repo: Repo; agents: AgentRegistry; transfers: TransferRegistry; archive: ArchiveStore;
  stopCheck: (stanza: string) => void; auth: TlsAuthorizer }): AgentGatewayHandlers {
  const { repo, agents, transfers, archive, auth } = deps;
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
            current = incomingFile(m.header.name, key, repo, (r) => {
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
            if (syncing.size >= PUT_SYNCING_MAX) await Promise.race(syncing);
          }
        }
        if (current) {
          current.abort();
          throw new ProtocolError(`upload of '${current.name}' ended without a trailer`);
        }
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
        await pipeline(await repo.storage.newRead(call.request.repoKey), grpcChunkWriter<DataChunk>(call, (data) => ({ data })));
        call.end();
      })().catch((err) => call.emit('error', errorToGrpc(err)));
    },

    GetBackupFiles(call: grpc.ServerWritableStream<GetFilesRequest__Output, GetFilesMessage>) {
      void (async () => {
        const transfer = transfers.get(call.request.jobId, 'restore');
        auth.stanzaCheck(call, 'GetBackupFiles', transfer.stanza);
        const refused = call.request.repoKeys.find((k) => !transfer.allowed.has(k));
        if (refused !== undefined) throw new ProtocolError(`repo file '${refused}' is not part of restore job '${call.request.jobId}'`);
        const lane = new GrpcChunkLane<GetFilesMessage>(call);
        for (const repoKey of call.request.repoKeys) {
          await lane.write({ start: { repoKey } });
          const info = await repo.storage.info(repoKey);
          if (info && info.type === 'file' && info.size <= SMALL_UPLOAD_MAX) {
            // A small file is read whole: no stream set up for a few kilobytes.
            const data = await repo.storage.get(repoKey);
            for (let offset = 0; offset < data.length; offset += CHUNK_SIZE) await lane.write({ chunk: { data: data.subarray(offset, offset + CHUNK_SIZE) } });
            await lane.write({ end: { repoSize: data.length } });
            continue;
          }
          const size = new SizeFilter();
          await pipeline(await repo.storage.newRead(repoKey), size.stream, lane.sink((data) => ({ chunk: { data } })));
          await lane.write({ end: { repoSize: size.result() } });
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
        auth.stanzaCheck(call, 'ArchivePush', header.stanza);
        deps.stopCheck(header.stanza);
        const info = await repo.archiveInfoLoad(header.stanza);
        const result = await archive.push(info, {
          stanza: header.stanza, walName: header.walName, size: header.size, sha256: header.sha256,
          compressType: header.compressType as CompressType,
        }, grpcChunkReader(iter, (m) => m.chunk?.data).on('error', () => undefined));
        log.detail(`archive-push '${header.walName}' for stanza '${header.stanza}' stored as '${result.key}'`);
        return { duplicate: result.duplicate, warning: result.warning, repoKey: result.key };
      })().then((r) => callback(null, r), (err) => {
        const e = errorWrap(err);
        log.warn(`archive-push refused: ${e.message}`);
        callback(errorToGrpc(e) as grpc.ServiceError);
      });
    },

    ArchiveKey(call: grpc.ServerUnaryCall<ArchiveKeyRequest__Output, CipherKey>, callback: grpc.sendUnaryData<CipherKey>) {
      void (async () => {
        auth.stanzaCheck(call, 'ArchiveKey', call.request.stanza);
        deps.stopCheck(call.request.stanza);
        if (!(await repo.stanzaExists(call.request.stanza))) await repo.archiveInfoLoad(call.request.stanza);
        const key = await repo.cipher.archiveKey(call.request.stanza);
        return key ?? { id: '', key: Buffer.alloc(0) };
      })().then((r) => callback(null, r), (err) => callback(errorToGrpc(err) as grpc.ServiceError));
    },

    ArchiveGet(call: grpc.ServerWritableStream<{ stanza: string; walName: string }, ArchiveGetMessage>) {
      void (async () => {
        auth.stanzaCheck(call, 'ArchiveGet', call.request.stanza);
        const info = await repo.archiveInfoLoad(call.request.stanza);
        const hit = await archive.get(info, call.request.stanza, call.request.walName);
        if (!hit) {
          call.write({ header: { found: false, sha256: '', compressType: '', archiveId: '', size: -1 } });
          call.end();
          return;
        }
        // The key of this file only, read from its header: the agent decrypts.
        const cipher = await repo.cipher.objectKey(call.request.stanza, repo.storage, hit.key);
        call.write({ header: { found: true, sha256: hit.sha256, compressType: hit.compressType, archiveId: hit.archiveId, size: hit.size, ...(cipher ? { cipher } : {}) } });
        await pipeline(await repo.storage.newRead(hit.key), grpcChunkWriter<ArchiveGetMessage>(call, (data) => ({ chunk: { data } })));
        call.end();
      })().catch((err) => call.emit('error', errorToGrpc(err)));
    },
  };
}

/** Files of one PutBackupFile call that may be syncing to disk while the next arrives. */
const PUT_SYNCING_MAX = 8;

interface IncomingFile {
  name: string;
  /** Feeds bytes of the file, honouring the storage write's backpressure. */
  write(data: Buffer): Promise<void>;
  /** The trailer arrived: resolves once the file is durable (or was reported missing). */
  end(trailer: PutFileTrailer__Output): Promise<void>;
  abort(): void;
}

/** Uploads up to this size are collected in memory and stored with one put (no stream). */
const SMALL_UPLOAD_MAX = 1024 * 1024;

/**
 * One file of an upload on its way into the repo: its bytes are hashed and counted, checked
 * against the trailer's sha256 and size, and committed (complete or missing) by the storage. A
 * small file is collected and stored whole; a large one streams into a storage write.
 */
function incomingFile(name: string, key: string, repo: Repo, onStored: (r: BackupFileStored) => void): IncomingFile {
  let buffered: Buffer[] | undefined = [];
  let bufferedBytes = 0;
  let streaming: { input: PassThrough; stored: Promise<void>; sha: Sha256Filter; size: SizeFilter; trailer?: PutFileTrailer__Output } | undefined;

  const streamStart = (): NonNullable<typeof streaming> => {
    const st: NonNullable<typeof streaming> = {
      input: new PassThrough({ highWaterMark: 1024 * 1024 }), sha: new Sha256Filter(), size: new SizeFilter(), stored: Promise.resolve(),
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
    st.stored = pipeline(st.input, st.sha.stream, st.size.stream, check, repo.storage.newWrite(key)).then(
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
          const sha = createHash('sha256').update(data).digest('hex');
          const err = uploadCheck(name, t, sha, data.length);
          if (err) throw err;
          await repo.storage.put(key, data);
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
  return new ChecksumError(`upload of '${name}' arrived with sha256 ${sha256} size ${size}, but the agent sent sha256 ${t.repoSha256} size ${t.repoSize}`);
}
