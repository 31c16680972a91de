import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ChecksumError, Sha256Filter, SizeFilter, cipherKeyLookup, decompressFilters, decryptFilters, grpcChunkReader, grpcDeadline, grpcMessages,
  ProtocolError, errorFromGrpc,
} from '@openrds/common';
import type { AgentGatewayClient, ArchiveGetMessage__Output, CompressType } from '@openrds/common';

export interface ArchiveGetOptions {
  stanza: string;
  walName: string;             // %f
  destination: string;         // absolute %p
  timeoutMs: number;
}

/**
 * Fetches one WAL file from the repo-server into `destination` (temp file, fsync, rename).
 * Returns false only when the repo-server says the file is not in the archive; any other failure
 * rejects, so that an error can never read as the end of the archive.
 */
export async function archiveGetFile(client: AgentGatewayClient, opts: ArchiveGetOptions): Promise<boolean> {
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
  const tmp = path.join(path.dirname(opts.destination), `.${path.basename(opts.destination)}.openrds.tmp`);
  const sha = new Sha256Filter();
  const size = new SizeFilter();
  // Encrypted repository: the repo-server sends the key of this one file with it.
  const keys = header.cipher?.id ? cipherKeyLookup([{ id: header.cipher.id, key: Buffer.from(header.cipher.key) }], `archive-get of '${opts.walName}'`) : undefined;
  try {
    await pipeline([
      grpcChunkReader(iter, (m) => m.chunk?.data, () => call.cancel()),
      ...[...decryptFilters(keys, `WAL file '${opts.walName}'`), ...decompressFilters(header.compressType as CompressType)].map((f) => f.stream),
      sha.stream, size.stream, fs.createWriteStream(tmp, { mode: 0o600 })]);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw errorFromGrpc(err as Error);
  }
  if ((header.sha256 && sha.result() !== header.sha256) || (header.size >= 0 && size.result() !== header.size)) {
    await fs.promises.rm(tmp, { force: true });
    throw new ChecksumError(
      `WAL file '${opts.walName}' from the repo has checksum ${sha.result()} size ${size.result()}, expected ${header.sha256} size ${header.size}`,
      { hint: 'the archive copy is corrupt: run verify, and restore the file from another repo if there is one' });
  }
  const fh = await fs.promises.open(tmp, 'r+');
  try { await fh.sync(); } finally { await fh.close(); }
  await fs.promises.rename(tmp, opts.destination);
  return true;
}
