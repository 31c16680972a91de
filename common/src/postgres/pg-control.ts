import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileMissingError, FileReadError, PgControlInvalidError } from '../error';
import { crc32c } from './crc32c';
import { pgControlLayout, pgVersionFromControl } from './version';
import { lsnFormat, walSegmentSizeIsValid } from './wal';

export interface PgControl {
  /** uint64 as a decimal string. */
  systemId: string;
  controlVersion: number;
  catalogVersion: number;
  /** Major, e.g. 15. */
  pgVersion: number;
  /** DBState: see PG_CONTROL_STATE. */
  state: number;
  /** 'X/XXXXXXXX', upper-case hex as pg_lsn prints it. */
  checkpointLsn: string;
  /** checkPointCopy.redo. */
  redoLsn: string;
  /** checkPointCopy.ThisTimeLineID. */
  timeline: number;
  pageSize: number;
  walPageSize: number;
  walSegmentSize: number;
  /** 0 when data checksums are off. */
  checksumVersion: number;
}

/** DBState values (the same in every supported version). */
export const PG_CONTROL_STATE = {
  startup: 0, shutDown: 1, shutDownInRecovery: 2, shuttingDown: 3, inCrashRecovery: 4, inArchiveRecovery: 5, inProduction: 6,
} as const;

/** PG_CONTROL_FILE_SIZE: the file is always this long, whatever the version. */
export const PG_CONTROL_SIZE = 8192;
/** PG_CONTROL_MAX_SAFE_SIZE: only these first bytes hold data, written in one sector. */
export const PG_CONTROL_DATA_SIZE = 512;
/** How long to wait before reading pg_control again after a bad checksum. */
export const PG_CONTROL_RETRY_MS = 50;
/** A bound on re-reads, should PostgreSQL rewrite pg_control on every one (it does not). */
const PG_CONTROL_READ_MAX = 200;

const KiB = 1024;

/** Parses pg_control bytes: checks the CRC-32C and the page and segment sizes; throws PgControlInvalidError. */
export function pgControlParse(buf: Buffer): PgControl {
  if (buf.length < PG_CONTROL_DATA_SIZE) {
    throw new PgControlInvalidError(`pg_control is ${buf.length} bytes, expected ${PG_CONTROL_SIZE}`, { hint: 'is the file truncated?' });
  }
  const controlVersion = buf.readUInt32LE(8);
  const catalogVersion = buf.readUInt32LE(12);
  const pgVersion = pgVersionFromControl(controlVersion, catalogVersion);
  const layout = pgControlLayout(pgVersion);

  const crcExpected = buf.readUInt32LE(layout.crc);
  const crcActual = crc32c(buf.subarray(0, layout.crc));
  if (crcActual !== crcExpected) {
    throw new PgControlInvalidError(
      `pg_control checksum is invalid (stored 0x${crcExpected.toString(16)}, computed 0x${crcActual.toString(16)})`,
      { hint: 'the file is damaged, or was read while PostgreSQL wrote it' });
  }

  const control: PgControl = {
    systemId: buf.readBigUInt64LE(0).toString(),
    controlVersion,
    catalogVersion,
    pgVersion,
    state: buf.readUInt32LE(16),
    checkpointLsn: lsnFormat(buf.readBigUInt64LE(32)),
    redoLsn: lsnFormat(buf.readBigUInt64LE(layout.checkPointCopy)),
    timeline: buf.readUInt32LE(layout.checkPointCopy + 8),
    pageSize: buf.readUInt32LE(layout.blcksz),
    walPageSize: buf.readUInt32LE(layout.xlogBlcksz),
    walSegmentSize: buf.readUInt32LE(layout.xlogSegSize),
    checksumVersion: buf.readUInt32LE(layout.dataChecksumVersion),
  };
  for (const [name, size] of [['page size', control.pageSize], ['WAL page size', control.walPageSize]] as const) {
    if (size < KiB || size > 32 * KiB || (size & (size - 1)) !== 0) {
      throw new PgControlInvalidError(`pg_control ${name} '${size}' is not a power of two from 1 KiB to 32 KiB`);
    }
  }
  if (!walSegmentSizeIsValid(control.walSegmentSize)) {
    throw new PgControlInvalidError(`pg_control WAL segment size '${control.walSegmentSize}' is not a power of two from 1 MiB to 1 GiB`);
  }
  return control;
}

/** Reads the whole pg_control file once. */
export type PgControlReader = () => Promise<Buffer>;

/**
 * Reads pg_control until its bytes pass their checks. PostgreSQL may be rewriting the file while
 * it is read: on an invalid checksum, read again every 50 ms until it is valid, and give up when
 * the same bad bytes come back twice (the file really is damaged). `file` names it in errors.
 */
export async function pgControlReadValid(
  read: PgControlReader, file = 'pg_control', opts: { retryMs?: number } = {},
): Promise<{ bytes: Buffer; control: PgControl }> {
  let prior: Buffer | undefined;
  for (let attempt = 1; ; attempt++) {
    const bytes = await read();
    try {
      if (bytes.length !== PG_CONTROL_SIZE) {
        throw new PgControlInvalidError(`pg_control is ${bytes.length} bytes, expected ${PG_CONTROL_SIZE}`, { hint: 'is the file truncated?' });
      }
      return { bytes, control: pgControlParse(bytes) };
    } catch (err) {
      if (!(err instanceof PgControlInvalidError)) throw err;
      if ((prior && prior.equals(bytes)) || attempt >= PG_CONTROL_READ_MAX) {
        throw new PgControlInvalidError(`${err.message} in '${file}'`, { hint: err.hint ?? '', cause: err });
      }
      prior = bytes;
      await sleep(opts.retryMs ?? PG_CONTROL_RETRY_MS);
    }
  }
}

function pgControlFileReader(pgPath: string): { file: string; read: PgControlReader } {
  const file = path.join(pgPath, 'global', 'pg_control');
  const read = async (): Promise<Buffer> => {
    try {
      return await fs.promises.readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new FileMissingError(`pg_control '${file}' does not exist`,
          { hint: `is '${pgPath}' the data directory of a PostgreSQL cluster (pg1-path)?`, cause: err });
      }
      throw new FileReadError(`unable to read pg_control '${file}': ${(err as Error).message}`,
        { hint: code === 'EACCES' ? 'run as the OS user that owns the data directory' : undefined, cause: err });
    }
  };
  return { file, read };
}

/** pg_control of the cluster in pgPath (reads <pgPath>/global/pg_control, retrying torn reads). */
export async function pgControlRead(pgPath: string): Promise<PgControl> {
  const { file, read } = pgControlFileReader(pgPath);
  return (await pgControlReadValid(read, file)).control;
}

/** The 8192 bytes of a valid pg_control of the cluster in pgPath, to copy into a backup. */
export async function pgControlReadBytes(pgPath: string): Promise<Buffer> {
  const { file, read } = pgControlFileReader(pgPath);
  return (await pgControlReadValid(read, file)).bytes;
}
