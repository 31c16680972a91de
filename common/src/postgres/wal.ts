import { FormatError, PgVersionUnsupportedError } from '../error';
import { pgVersionFromWalMagic } from './version';

/** A WAL segment: timeline, log (high 32 bits of the LSN) and segment within the log, 8 hex each. */
export const WAL_SEGMENT_RE = /^[0-9A-F]{24}$/;
/** A timeline history file: '00000002.history'. */
export const WAL_HISTORY_RE = /^[0-9A-F]{8}\.history$/;
/** The unfinished last segment of the old timeline, archived at promotion. */
export const WAL_PARTIAL_RE = /^[0-9A-F]{24}\.partial$/;
/** A backup history file written by the backup stop: '<segment>.<offset in segment>.backup'. */
export const WAL_BACKUP_RE = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;

const MiB = 1024 * 1024;
const LSN_MAX = 0xffffffffffffffffn;

/** '0/1A000028' (pg_lsn text) → 0x1A000028n; throws FormatError. */
export function lsnParse(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m) throw new FormatError(`'${text}' is not an LSN`, { hint: "an LSN is written as two hex numbers, e.g. '0/1A000028'" });
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** 0x1A000028n → '0/1A000028': upper-case hex without padding, as pg_lsn prints it. */
export function lsnFormat(lsn: bigint): string {
  if (lsn < 0n || lsn > LSN_MAX) throw new FormatError(`'${lsn}' is out of the range of an LSN`);
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

function hex8(n: number | bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** Whether a WAL segment size is one PostgreSQL accepts: a power of two from 1 MiB to 1 GiB. */
export function walSegmentSizeIsValid(segSize: number): boolean {
  return Number.isInteger(segSize) && segSize >= MiB && segSize <= 1024 * MiB && (segSize & (segSize - 1)) === 0;
}

function segmentsPerLog(segSize: number): bigint {
  if (!walSegmentSizeIsValid(segSize)) {
    throw new FormatError(`WAL segment size '${segSize}' is not a power of two from 1 MiB to 1 GiB`);
  }
  return 0x100000000n / BigInt(segSize);
}

function timelineCheck(timeline: number): void {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffffffff) throw new FormatError(`'${timeline}' is not a timeline`);
}

/** The name of the segment that holds an LSN (24 hex chars); a log holds 4 GiB / segSize segments. */
export function walSegmentName(timeline: number, lsn: bigint, segSize: number): string {
  timelineCheck(timeline);
  const perLog = segmentsPerLog(segSize);
  if (lsn < 0n || lsn > LSN_MAX) throw new FormatError(`'${lsn}' is out of the range of an LSN`);
  const segNo = lsn / BigInt(segSize);
  return `${hex8(timeline)}${hex8(segNo / perLog)}${hex8(segNo % perLog)}`;
}

/** Timeline, log and segment of a segment name (or of the segment a .partial/.backup name starts with). */
export function walSegmentParse(name: string): { timeline: number; log: number; seg: number } {
  const segment = name.slice(0, 24);
  if (!WAL_SEGMENT_RE.test(segment) || (name.length > 24 && !WAL_PARTIAL_RE.test(name) && !WAL_BACKUP_RE.test(name))) {
    throw new FormatError(`'${name}' is not a WAL segment name`);
  }
  return { timeline: parseInt(segment.slice(0, 8), 16), log: parseInt(segment.slice(8, 16), 16), seg: parseInt(segment.slice(16), 16) };
}

/** The first LSN of a segment. */
export function walSegmentStartLsn(name: string, segSize: number): bigint {
  const { log, seg } = walSegmentParse(name);
  if (BigInt(seg) >= segmentsPerLog(segSize)) throw new FormatError(`'${name}' is not a WAL segment name for ${segSize / MiB} MiB segments`);
  return (BigInt(log) << 32n) + BigInt(seg) * BigInt(segSize);
}

/** The segment after `name` on the same timeline, rolling over into the next log after the last. */
export function walSegmentNext(name: string, segSize: number): string {
  const { timeline, log, seg } = walSegmentParse(name);
  const perLog = Number(segmentsPerLog(segSize));
  if (seg >= perLog) throw new FormatError(`'${name}' is not a WAL segment name for ${segSize / MiB} MiB segments`);
  return seg + 1 >= perLog ? `${hex8(timeline)}${hex8(log + 1)}${hex8(0)}` : `${hex8(timeline)}${hex8(log)}${hex8(seg + 1)}`;
}

/** Every segment from the one holding `start` to the one holding `stop`, inclusive. */
export function walSegmentRange(timeline: number, start: bigint, stop: bigint, segSize: number): string[] {
  if (stop < start) throw new FormatError(`WAL range stop '${lsnFormat(stop)}' is before start '${lsnFormat(start)}'`);
  const names = [walSegmentName(timeline, start, segSize)];
  const last = walSegmentName(timeline, stop, segSize);
  while (names[names.length - 1] !== last) names.push(walSegmentNext(names[names.length - 1]!, segSize));
  return names;
}

export type WalFileKind = 'segment' | 'partial' | 'history' | 'backup';

/** What kind of WAL file a name is (as archive_command passes %f), or undefined. */
export function walFileKind(name: string): WalFileKind | undefined {
  if (WAL_SEGMENT_RE.test(name)) return 'segment';
  if (WAL_PARTIAL_RE.test(name)) return 'partial';
  if (WAL_HISTORY_RE.test(name)) return 'history';
  if (WAL_BACKUP_RE.test(name)) return 'backup';
  return undefined;
}

export interface WalHeader {
  magic: number;
  pgVersion: number;
  systemId: string;
  segmentSize: number;
  blockSize: number;
  timeline: number;
  pageAddr: bigint;
}

/** xlp_info flag of a long page header, which the first page of every segment has. */
const XLP_LONG_HEADER = 0x0002;
/** SizeOfXLogLongPHD: the short header (MAXALIGNed to 24 bytes) plus sysid, seg size and block size. */
export const WAL_LONG_HEADER_SIZE = 40;

/**
 * The long page header at offset 0 of a WAL segment (XLogLongPageHeaderData, xlog_internal.h):
 * xlp_magic u16 @0, xlp_info u16 @2, xlp_tli u32 @4, xlp_pageaddr u64 @8, xlp_sysid u64 @24,
 * xlp_seg_size u32 @32, xlp_xlog_blcksz u32 @36. Throws FormatError if it is not one.
 */
export function walHeaderParse(buf: Buffer): WalHeader {
  if (buf.length < WAL_LONG_HEADER_SIZE) {
    throw new FormatError(`WAL header is ${buf.length} bytes, expected at least ${WAL_LONG_HEADER_SIZE}`, { hint: 'is the WAL file truncated?' });
  }
  const magic = buf.readUInt16LE(0);
  let pgVersion: number;
  try {
    pgVersion = pgVersionFromWalMagic(magic);
  } catch (err) {
    if (!(err instanceof PgVersionUnsupportedError)) throw err;
    throw new FormatError(`${err.message} in WAL header`, { hint: err.hint ?? '', cause: err });
  }
  if (!(buf.readUInt16LE(2) & XLP_LONG_HEADER)) {
    throw new FormatError('WAL file does not start with a long page header', { hint: 'is this the start of a WAL segment?' });
  }
  const header: WalHeader = {
    magic,
    pgVersion,
    timeline: buf.readUInt32LE(4),
    pageAddr: buf.readBigUInt64LE(8),
    systemId: buf.readBigUInt64LE(24).toString(),
    segmentSize: buf.readUInt32LE(32),
    blockSize: buf.readUInt32LE(36),
  };
  if (!walSegmentSizeIsValid(header.segmentSize)) {
    throw new FormatError(`WAL header segment size '${header.segmentSize}' is not a power of two from 1 MiB to 1 GiB`);
  }
  if (header.blockSize < 1024 || header.blockSize > 65536 || (header.blockSize & (header.blockSize - 1)) !== 0) {
    throw new FormatError(`WAL header block size '${header.blockSize}' is not a power of two from 1 KiB to 64 KiB`);
  }
  if (header.pageAddr % BigInt(header.segmentSize) !== 0n) {
    throw new FormatError(`WAL header page address '${lsnFormat(header.pageAddr)}' is not the start of a segment`);
  }
  return header;
}
