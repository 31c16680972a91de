import type * as grpc from '@grpc/grpc-js';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  ChecksumError, ProtocolError, Sha256Filter, SizeFilter, errorToGrpc, errorWrap, grpcChunkReader, grpcChunkWriter,
  grpcMessages, log,
} from '@openrds/common';
import type {
  AgentGatewayHandlers, AgentMessage__Output, ArchiveGetMessage, ArchivePushMessage__Output, DataChunk,
  PutFileMessage__Output, PutFileTrailer__Output, ServerMessage,
} from '@openrds/common';
import { ArchiveStore } from '../command/archive/archive-store';
import { Repo } from '../repo/repo';
import { AgentConnection, AgentRegistry } from './agent-registry';
import type { TlsAuthorizer } from './tls-auth';
import { TransferRegistry } from './transfers';

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
        const first = await iter.next();
        const header = first.done ? undefined : first.value.header;
        if (!header) throw new ProtocolError('PutBackupFile must start with a header');
        const transfer = transfers.get(header.jobId, 'backup');
        auth.stanzaCheck(call, 'PutBackupFile', transfer.stanza);
        const key = transfer.keyFor(header.name);
        if (!key) throw new ProtocolError(`file '${header.name}' is not part of backup job '${header.jobId}'`);
        let trailer: PutFileTrailer__Output | undefined;
        const sha = new Sha256Filter(), size = new SizeFilter();
        const check = new Transform({
          transform: (chunk: Buffer, _e, cb: TransformCallback) => cb(null, chunk),
          flush: (cb: TransformCallback) => {
            if (!trailer) return cb(new ProtocolError(`upload of '${header.name}' ended without a trailer`));
            if (trailer.missing) return cb(new FileVanished());
            if (trailer.repoSha256 !== sha.result() || trailer.repoSize !== size.result()) {
              return cb(new ChecksumError(`upload of '${header.name}' arrived with sha256 ${sha.result()} size ${size.result()}, but the agent sent sha256 ${trailer.repoSha256} size ${trailer.repoSize}`));
            }
            cb();
          },
        });
        try {
          await pipeline(grpcChunkReader(iter, (m) => {
            if (m.trailer) trailer = m.trailer;
            return m.chunk?.data;
          }), sha.stream, size.stream, check, repo.storage.newWrite(key));
        } catch (err) {
          if (!(err instanceof FileVanished)) throw err;
        }
        transfer.onStored(header.name, {
          missing: trailer!.missing, size: trailer!.size, sha256: trailer!.sha256,
          repoSize: size.result(), repoSha256: sha.result(),
        });
        return { repoSize: size.result() };
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
          compressType: header.compressType as 'none' | 'zst',
        }, grpcChunkReader(iter, (m) => m.chunk?.data).on('error', () => undefined));
        log.detail(`archive-push '${header.walName}' for stanza '${header.stanza}' stored as '${result.key}'`);
        return { duplicate: result.duplicate, warning: result.warning, repoKey: result.key };
      })().then((r) => callback(null, r), (err) => {
        const e = errorWrap(err);
        log.warn(`archive-push refused: ${e.message}`);
        callback(errorToGrpc(e) as grpc.ServiceError);
      });
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
        call.write({ header: { found: true, sha256: hit.sha256, compressType: hit.compressType, archiveId: hit.archiveId, size: hit.size } });
        await pipeline(await repo.storage.newRead(hit.key), grpcChunkWriter<ArchiveGetMessage>(call, (data) => ({ chunk: { data } })));
        call.end();
      })().catch((err) => call.emit('error', errorToGrpc(err)));
    },
  };
}

