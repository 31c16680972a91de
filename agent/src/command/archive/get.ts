import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ChecksumError, FileWriteError, Sha256Filter, SizeFilter, cipherKeyLookup, decompressFilters, decryptBuffer, decryptFilters, grpcChunkReader, grpcDeadline, grpcMessages,
  ProtocolError, ZstdDataError, errorFromGrpc, log, walFileKind,
} from '@openrds/common';
import type { AgentGatewayClient, ArchiveGetMessage__Output, CipherKeyLookup, CompressType, FilterPool } from '@openrds/common';

export interface ArchiveGetOptions {
  stanza: string;
  walName: string;             // %f
  destination: string;         // absolute %p
  timeoutMs: number;
  /**
   * The daemon's worker pool and the cluster's WAL segment size: a zstd segment is then received
   * whole and decompressed, checked and written by a worker in one message (streamed through the
   * main thread it took 100-360 ms per 16 MiB segment while recovery kept the other core busy).
   */
  pool?: FilterPool;
  walSegmentSize?: number;
}

/** A compressed segment larger than this is refused by the whole path (16 MiB compresses to a few). */
const WHOLE_MAX = 64 * 1024 * 1024;

/**
 * Fetches one WAL file from the repo-server into `destination` (temp file, fsync, rename).
 * Returns false only when the repo-server says the file is not in the archive; any other failure
 * rejects, so that an error can never read as the end of the archive.
 */
export async function archiveGetFile(client: AgentGatewayClient, opts: ArchiveGetOptions): Promise<boolean> {
  const t0 = Date.now();
  const call = client.archiveGet({ stanza: opts.stanza, walName: opts.walName }, { deadline: grpcDeadline(opts.timeoutMs) });
  const iter = grpcMessages<ArchiveGetMessage__Output>(call);
  let first: IteratorResult<ArchiveGetMessage__Output>;
  try {
    first = await iter.next();
  } catch (err) {
    throw errorFromGrpc(err as Error);
  }
  const header = first.done ? undefined : first.value.header;
  if (!header) throw new ProtocolError(`archive-get of '${opts.walName}' got no header from the repo-server`);
  if (!header.found) {
    call.cancel();
    return false;
  }
  const t1 = Date.now();
  const tmp = path.join(path.dirname(opts.destination), `.${path.basename(opts.destination)}.openrds.tmp`);
  // Encrypted repository: the repo-server sends the key of this one file with it.
  const keys = header.cipher?.id ? cipherKeyLookup([{ id: header.cipher.id, key: Buffer.from(header.cipher.key) }], `archive-get of '${opts.walName}'`) : undefined;
  const hint = 'the archive copy is corrupt: run verify, and restore the file from another repo if there is one';
  const corrupt = (sha256: string, size: number, expectSize: number): ChecksumError => new ChecksumError(
    `WAL file '${opts.walName}' from the repo has checksum ${sha256} size ${size}, expected ${header.sha256} size ${expectSize}`, { hint });
  const damaged = (why: string): ChecksumError => new ChecksumError(`WAL file '${opts.walName}' from the repo is damaged: ${why}`, { hint });
  // A zstd segment with the daemon's pool: decompressed, checked, written and fsynced by a worker.
  const whole = !!opts.pool && !!opts.walSegmentSize && header.compressType === 'zst' && !!header.sha256 && walFileKind(opts.walName) === 'segment';
  let tReceived = t1;
  try {
    if (whole) {
      const repoBytes = await receiveWhole(iter, () => call.cancel(), keys, opts.walName);
      tReceived = Date.now();
      const [r] = await opts.pool!.writeSmall([{ path: tmp, data: repoBytes, size: opts.walSegmentSize!, sha256: header.sha256, mode: 0o600, mtime: Date.now() / 1000, compressed: true, syncNow: true }]);
      if (!r) throw new FileWriteError(`no result for the write of '${tmp}'`);
      if ('error' in r) throw new FileWriteError(`unable to write ${r.error}`, { hint: 'check free space and permissions of the spool path or pg_wal' });
      if ('corrupt' in r) throw damaged(r.corrupt);
      if ('sha256' in r) throw corrupt(r.sha256, r.size, opts.walSegmentSize!);
    } else {
      const sha = new Sha256Filter();
      const size = new SizeFilter();
      await pipeline([
        grpcChunkReader(iter, (m) => m.chunk?.data, () => call.cancel()),
        ...[...decryptFilters(keys, `WAL file '${opts.walName}'`), ...decompressFilters(header.compressType as CompressType)].map((f) => f.stream),
        sha.stream, size.stream, fs.createWriteStream(tmp, { mode: 0o600 })]);
      if ((header.sha256 && sha.result() !== header.sha256) || (header.size >= 0 && size.result() !== header.size)) throw corrupt(sha.result(), size.result(), header.size);
    }
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    // Damaged zstd data is named here, where the file is known (ZstdDataError does not know it).
    throw err instanceof ZstdDataError ? damaged(err.message) : errorFromGrpc(err as Error);
  }
  const t2 = Date.now();
  if (!whole) {
    const fh = await fs.promises.open(tmp, 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
  }
  await fs.promises.rename(tmp, opts.destination);
  log.detail(`archive-get '${opts.walName}': ${Date.now() - t0} ms (repo-server lookup ${t1 - t0} ms, `
    + (whole ? `receive ${tReceived - t1} ms, decompress+sha256+write+fsync on a worker ${t2 - tReceived} ms)` : `receive+decompress+sha256+write ${t2 - t1} ms, fsync ${Date.now() - t2} ms)`));
  return true;
}

/** The repo bytes of a WAL file in one buffer (decrypted when the repository is encrypted). */
async function receiveWhole(iter: AsyncIterator<ArchiveGetMessage__Output>, cancel: () => void, keys: CipherKeyLookup | undefined, walName: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for (let m = await iter.next(); !m.done; m = await iter.next()) {
    const data = m.value.chunk?.data;
    if (!data) continue;
    bytes += data.length;
    if (bytes > WHOLE_MAX) {
      cancel();
      throw new ProtocolError(`WAL file '${walName}' from the repo is over ${WHOLE_MAX} bytes compressed`);
    }
    chunks.push(data);
  }
  const all = Buffer.concat(chunks, bytes);
  return keys ? decryptBuffer(keys, all, `WAL file '${walName}'`) : all;
}
