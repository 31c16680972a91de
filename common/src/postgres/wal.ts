import { FormatError } from '../error';
import { pgVersionFromWalMagic } from './version';

export const WAL_SEGMENT_RE = /^[0-9A-F]{24}$/;
export const WAL_HISTORY_RE = /^[0-9A-F]{8}\.history$/;
export const WAL_PARTIAL_RE = /^[0-9A-F]{24}\.partial$/;
export const WAL_BACKUP_RE = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;

/** '0/1A000028' → 0x1A000028n. */
export function lsnParse(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new FormatError(`'${text}' is not an LSN`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** 0x1A000028n → '0/1A000028', as PostgreSQL prints pg_lsn. */
export function lsnFormat(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

const hex8 = (n: number | bigint): string => n.toString(16).toUpperCase().padStart(8, '0');

function segmentsPerLog(segSize: number): bigint {
  return 0x100000000n / BigInt(segSize);
}

/** The segment holding an LSN: timeline, log (high 32 bits), segment within the log. */
export function walSegmentName(timeline: number, lsn: bigint, segSize: number): string {
  const segNo = lsn / BigInt(segSize);
  const perLog = segmentsPerLog(segSize);
  return `${hex8(timeline)}${hex8(segNo / perLog)}${hex8(segNo % perLog)}`;
}

export function walSegmentParse(name: string): { timeline: number; log: number; seg: number } {
  if (!WAL_SEGMENT_RE.test(name.slice(0, 24))) throw new FormatError(`'${name}' is not a WAL segment name`);
  return { timeline: parseInt(name.slice(0, 8), 16), log: parseInt(name.slice(8, 16), 16), seg: parseInt(name.slice(16, 24), 16) };
}

/** The segment after `name` on the same timeline, rolling over into the next log. */
export function walSegmentNext(name: string, segSize: number): string {
  const { timeline, log, seg } = walSegmentParse(name);
  const perLog = Number(segmentsPerLog(segSize));
  return seg + 1 >= perLog ? `${hex8(timeline)}${hex8(log + 1)}${hex8(0)}` : `${hex8(timeline)}${hex8(log)}${hex8(seg + 1)}`;
}

/** Every segment from the one holding `start` to the one holding `stop`, inclusive. */
export function walSegmentRange(timeline: number, start: bigint, stop: bigint, segSize: number): string[] {
  if (stop < start) throw new FormatError(`WAL range stop ${lsnFormat(stop)} is before start ${lsnFormat(start)}`);
  const out = [walSegmentName(timeline, start, segSize)];
  const last = walSegmentName(timeline, stop, segSize);
  while (out[out.length - 1] !== last) out.push(walSegmentNext(out[out.length - 1]!, segSize));
  return out;
}

/** What kind of file of pg_wal a name is, or undefined. */
export function walFileKind(name: string): 'segment' | 'partial' | 'history' | 'backup' | undefined {
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

const XLP_LONG_HEADER = 0x0002;
/** SizeOfXLogLongPHD: the short header (MAXALIGNed to 24) + sysid, seg size, block size. */
export const WAL_LONG_HEADER_SIZE = 40;

/** The long page header at the start of a WAL segment. */
export function walHeaderParse(buf: Buffer): WalHeader {
  if (buf.length < WAL_LONG_HEADER_SIZE) throw new FormatError(`WAL header is ${buf.length} bytes, expected at least ${WAL_LONG_HEADER_SIZE}`);
  const magic = buf.readUInt16LE(0);
  const info = buf.readUInt16LE(2);
  if (!(info & XLP_LONG_HEADER)) throw new FormatError('WAL file does not start with a long page header', { hint: 'is this a WAL segment?' });
  return {
    magic,
    pgVersion: pgVersionFromWalMagic(magic),
    timeline: buf.readUInt32LE(4),
    pageAddr: buf.readBigUInt64LE(8),
    systemId: buf.readBigUInt64LE(24).toString(),
    segmentSize: buf.readUInt32LE(32),
    blockSize: buf.readUInt32LE(36),
  };
}
