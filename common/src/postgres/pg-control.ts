import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgControlInvalidError } from '../error';
import { crc32c } from './crc32c';
import { pgVersionFromControl, pgVersionInfo } from './version';
import { lsnFormat } from './wal';

export interface PgControl {
  systemId: string;
  controlVersion: number;
  catalogVersion: number;
  pgVersion: number;
  state: number;
  checkpointLsn: string;
  redoLsn: string;
  timeline: number;
  pageSize: number;
  walPageSize: number;
  walSegmentSize: number;
  checksumVersion: number;
}

export const PG_CONTROL_SIZE = 8192;
/** Only the first 512 bytes of pg_control hold data (PG_CONTROL_MAX_SAFE_SIZE). */
const PG_CONTROL_DATA_MAX = 512;
/** ControlFileData.floatFormat: a double PostgreSQL stores to detect float format mismatches. */
const FLOAT_FORMAT = 1234567.0;

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/**
 * Parses pg_control. The fields every version shares sit at fixed offsets; the block from
 * floatFormat on (page sizes, segment size, checksum version) moved between versions, so it is
 * found by its floatFormat anchor, and the CRC by checking where a valid CRC-32C sits after it.
 */
export function pgControlParse(buf: Buffer): PgControl {
  if (buf.length < PG_CONTROL_DATA_MAX) throw new PgControlInvalidError(`pg_control is ${buf.length} bytes, expected ${PG_CONTROL_SIZE}`);
  const controlVersion = buf.readUInt32LE(8);
  const catalogVersion = buf.readUInt32LE(12);
  const pgVersion = pgVersionFromControl(controlVersion, catalogVersion);
  let anchor = -1;
  for (let off = 64; off + 8 <= PG_CONTROL_DATA_MAX; off += 8) {
    if (buf.readDoubleLE(off) === FLOAT_FORMAT) { anchor = off; break; }
  }
  if (anchor < 0) throw new PgControlInvalidError('pg_control has no float format marker', { hint: 'the file is damaged or not a pg_control' });
  let crcOffset = -1;
  for (let off = anchor + 48; off + 4 <= PG_CONTROL_DATA_MAX; off += 4) {
    if (crc32c(buf.subarray(0, off)) === buf.readUInt32LE(off)) { crcOffset = off; break; }
  }
  if (crcOffset < 0) {
    throw new PgControlInvalidError('pg_control checksum is invalid', { hint: 'the file is damaged, or was read while PostgreSQL wrote it' });
  }
  const copy = pgVersionInfo(pgVersion).checkPointCopyOffset;
  const control: PgControl = {
    systemId: buf.readBigUInt64LE(0).toString(),
    controlVersion, catalogVersion, pgVersion,
    state: buf.readUInt32LE(16),
    checkpointLsn: lsnFormat(buf.readBigUInt64LE(32)),
    redoLsn: lsnFormat(buf.readBigUInt64LE(copy)),
    timeline: buf.readUInt32LE(copy + 8),
    pageSize: buf.readUInt32LE(anchor + 8),
    walPageSize: buf.readUInt32LE(anchor + 16),
    walSegmentSize: buf.readUInt32LE(anchor + 20),
    checksumVersion: buf.readUInt32LE(anchor + 44),
  };
  if (!isPow2(control.pageSize) || control.pageSize < 1024 || control.pageSize > 32768) {
    throw new PgControlInvalidError(`pg_control page size ${control.pageSize} is not a power of two between 1 KiB and 32 KiB`);
  }
  if (!isPow2(control.walSegmentSize) || control.walSegmentSize < 1024 * 1024 || control.walSegmentSize > 1024 ** 3) {
    throw new PgControlInvalidError(`pg_control WAL segment size ${control.walSegmentSize} is not a power of two between 1 MiB and 1 GiB`);
  }
  return control;
}

export type PgControlReader = () => Promise<Buffer>;

/**
 * Reads pg_control bytes that pass their CRC. PostgreSQL may be writing the file: on a bad CRC
 * re-read every 50 ms until it is valid, and give up when the same bad bytes come back twice.
 */
export async function pgControlReadValid(read: PgControlReader, file = 'pg_control'): Promise<{ bytes: Buffer; control: PgControl }> {
  let prior: Buffer | undefined;
  for (;;) {
    const bytes = await read();
    try {
      return { bytes, control: pgControlParse(bytes) };
    } catch (err) {
      if (!(err instanceof PgControlInvalidError) || (prior && prior.equals(bytes))) {
        if (err instanceof PgControlInvalidError) throw new PgControlInvalidError(`${err.message} in '${file}'`, { hint: err.hint ?? '' });
        throw err;
      }
      prior = bytes;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function fileReader(pgPath: string): { file: string; read: PgControlReader } {
  const file = path.join(pgPath, 'global', 'pg_control');
  return {
    file,
    read: async () => {
      try {
        return await fs.promises.readFile(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new PgControlInvalidError(`'${file}' does not exist`, { hint: `is '${pgPath}' the data directory of a PostgreSQL cluster (pg1-path)?` });
        }
        throw err;
      }
    },
  };
}

/** pg_control of the cluster at pgPath. */
export async function pgControlRead(pgPath: string): Promise<PgControl> {
  const { file, read } = fileReader(pgPath);
  return (await pgControlReadValid(read, file)).control;
}

/** The raw bytes of a consistent pg_control, for copying into a backup. */
export async function pgControlReadBytes(pgPath: string): Promise<Buffer> {
  const { file, read } = fileReader(pgPath);
  return (await pgControlReadValid(read, file)).bytes;
}
