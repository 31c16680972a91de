import { FormatError } from '../error';
import {
  lsnFormat, lsnParse, walFileKind, walHeaderParse, walSegmentName, walSegmentNext, walSegmentParse, walSegmentRange,
} from './wal';

const MiB = 1024 * 1024;

describe('LSN', () => {
  it('parses and prints as PostgreSQL does', () => {
    expect(lsnParse('0/1A000028')).toBe(0x1a000028n);
    expect(lsnParse('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(lsnFormat(0x1a000028n)).toBe('0/1A000028');
    expect(lsnFormat((0x16n << 32n) | 0xb374d848n)).toBe('16/B374D848');
    expect(() => lsnParse('0-1')).toThrow(FormatError);
  });
});

describe('WAL segment names', () => {
  it('names the segment holding an LSN for several segment sizes', () => {
    expect(walSegmentName(1, lsnParse('0/1A000028'), 16 * MiB)).toBe('00000001000000000000001A');
    expect(walSegmentName(2, lsnParse('5/FF000000'), 16 * MiB)).toBe('0000000200000005000000FF');
    expect(walSegmentName(1, lsnParse('0/5000000'), MiB)).toBe('000000010000000000000050');
    expect(walSegmentName(1, lsnParse('1/80000000'), 1024 * MiB)).toBe('000000010000000100000002');
  });

  it('rolls over into the next log after the last segment of a log', () => {
    expect(walSegmentNext('0000000100000000000000FE', 16 * MiB)).toBe('0000000100000000000000FF');
    expect(walSegmentNext('0000000100000000000000FF', 16 * MiB)).toBe('000000010000000100000000');
    expect(walSegmentNext('000000010000000000000003', 1024 * MiB)).toBe('000000010000000100000000');
    expect(walSegmentNext('000000010000000000000FFF', MiB)).toBe('000000010000000100000000');
  });

  it('lists every segment of a range, across a log boundary', () => {
    expect(walSegmentRange(1, lsnParse('0/FE000028'), lsnParse('1/01000100'), 16 * MiB)).toEqual([
      '0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000', '000000010000000100000001',
    ]);
    expect(walSegmentRange(3, lsnParse('0/2000028'), lsnParse('0/2000100'), 16 * MiB)).toEqual(['000000030000000000000002']);
    expect(() => walSegmentRange(1, 10n, 5n, 16 * MiB)).toThrow(FormatError);
  });

  it('tells segments, partials, history and backup files apart', () => {
    expect(walFileKind('000000010000000000000001')).toBe('segment');
    expect(walFileKind('000000010000000000000001.partial')).toBe('partial');
    expect(walFileKind('00000002.history')).toBe('history');
    expect(walFileKind('000000010000000000000002.00000028.backup')).toBe('backup');
    expect(walFileKind('00000001000000000000001')).toBeUndefined();
    expect(walFileKind('archive_status')).toBeUndefined();
    expect(walSegmentParse('0000000A0000000B000000FF')).toEqual({ timeline: 10, log: 11, seg: 255 });
  });

  it('refuses a WAL page without a long header', () => {
    const page = Buffer.alloc(64);
    page.writeUInt16LE(0xd110, 0);
    expect(() => walHeaderParse(page)).toThrow('does not start with a long page header');
  });
});
