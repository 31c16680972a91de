import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  FileMissingError, FormatError, compressFilters, grpcChunkWriter, grpcClientStream, grpcDeadline, grpcWrite,
  sha256File, walFileKind,
} from '@openrds/common';
import { Writable } from 'node:stream';
import type { AgentGatewayClient, ArchivePushMessage, ArchivePushResult__Output, CompressType, FilterPool } from '@openrds/common';

export interface ArchivePushOptions {
  stanza: string;
  walPath: string;             // absolute path of the file PostgreSQL asks to archive
  compressType: CompressType;
  compressLevel: number;
  agentId: string;
  timeoutMs: number;
  /** Worker threads for sha256 and zstd (the daemon has them; a short-lived command does not). */
  pool?: FilterPool;
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
  let digest: { sha256: string; size: number };
  try {
    digest = opts.pool ? await poolDigest(opts.pool, opts.walPath) : await sha256File(opts.walPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FileMissingError(`WAL file '${opts.walPath}' does not exist`, { hint: 'archive-push expects %p of archive_command' });
    }
    throw err;
  }
  const { call, response, failure } = grpcClientStream<ArchivePushMessage, ArchivePushResult__Output>(
    (cb) => client.archivePush({ deadline: grpcDeadline(opts.timeoutMs) }, cb));
  await grpcWrite(call, {
    header: {
      stanza: opts.stanza, walName, size: digest.size, sha256: digest.sha256,
      compressType: opts.compressType, agentId: opts.agentId,
    },
  });
  const filters = opts.pool && opts.compressType === 'zst'
    ? [opts.pool.transform('compress', opts.compressLevel)]
    : compressFilters(opts.compressType, opts.compressLevel).map((f) => f.stream);
  try {
    await pipeline([fs.createReadStream(opts.walPath), ...filters,
      grpcChunkWriter<ArchivePushMessage>(call, (data) => ({ chunk: { data } }))]);
    call.end();
  } catch (err) {
    // When the repo-server refused the file, its reason is the error to report.
    call.cancel();
    throw failure() ?? err;
  }
  return response;
}

async function poolDigest(pool: FilterPool, file: string): Promise<{ sha256: string; size: number }> {
  const t = pool.transform('digest');
  await pipeline(fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), t, new Writable({ write: (_c, _e, cb) => cb() }));
  return { sha256: t.result().inSha256, size: t.result().inSize };
}
