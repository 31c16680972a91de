import { FormatError } from '../error';
import {
  WAL_BACKUP_RE, WAL_HISTORY_RE, WAL_PARTIAL_RE, WAL_SEGMENT_RE, lsnFormat, lsnParse, walFileKind, walHeaderParse, walSegmentName,
  walSegmentNext, walSegmentParse, walSegmentRange, walSegmentStartLsn,
} from './wal';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('LSN', () => {
  it('parses pg_lsn text', () => {
    expect(lsnParse('0/1A000028')).toBe(0x1a000028n);
    expect(lsnParse('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(lsnParse('0/0')).toBe(0n);
    expect(lsnParse('ffffffff/ffffffff')).toBe(0xffffffffffffffffn);
  });

  it('prints upper-case hex without padding, as PostgreSQL does', () => {
    expect(lsnFormat(0x1a000028n)).toBe('0/1A000028');
    expect(lsnFormat((0x16n << 32n) | 0xb374d848n)).toBe('16/B374D848');
    expect(lsnFormat(0x183ada0n)).toBe('0/183ADA0');
    expect(lsnFormat(lsnParse('a/b'))).toBe('A/B');
  });

  it('refuses text that is not an LSN', () => {
    for (const text of ['0-1', '0/', '/1', '123456789/0', '0/1 ', 'x/1', '']) {
      expect(() => lsnParse(text)).toThrow(FormatError);
    }
    expect(() => lsnParse('0-1')).toThrow("'0-1' is not an LSN");
    expect(() => lsnFormat(-1n)).toThrow(FormatError);
    expect(() => lsnFormat(1n << 64n)).toThrow(FormatError);
  });
});

describe('walSegmentName', () => {
  it('names the segment holding an LSN (16 MiB)', () => {
    expect(walSegmentName(1, lsnParse('0/1A000028'), 16 * MiB)).toBe('00000001000000000000001A');
    expect(walSegmentName(2, lsnParse('5/FF000000'), 16 * MiB)).toBe('0000000200000005000000FF');
    expect(walSegmentName(0x1f, lsnParse('5/FFFFFFFF'), 16 * MiB)).toBe('0000001F00000005000000FF');
    expect(walSegmentName(1, lsnParse('6/0'), 16 * MiB)).toBe('000000010000000600000000');
  });

  it('names segments of 1 MiB: 4096 per log', () => {
    expect(walSegmentName(1, lsnParse('0/5000000'), MiB)).toBe('000000010000000000000050');
    expect(walSegmentName(1, lsnParse('3/FFFFFFFF'), MiB)).toBe('000000010000000300000FFF');
  });

  it('names segments of 1 GiB: 4 per log', () => {
    expect(walSegmentName(1, lsnParse('1/80000000'), GiB)).toBe('000000010000000100000002');
    expect(walSegmentName(1, lsnParse('1/FFFFFFFF'), GiB)).toBe('000000010000000100000003');
  });

  it('refuses segment sizes and timelines PostgreSQL does not have', () => {
    expect(() => walSegmentName(1, 0n, 3 * MiB)).toThrow("WAL segment size '3145728' is not a power of two from 1 MiB to 1 GiB");
    expect(() => walSegmentName(1, 0n, 512 * 1024)).toThrow(FormatError);
    expect(() => walSegmentName(1, 0n, 2 * GiB)).toThrow(FormatError);
    expect(() => walSegmentName(0, 0n, 16 * MiB)).toThrow("'0' is not a timeline");
  });
});

describe('walSegmentNext', () => {
  it('rolls over into the next log after segment FF of 16 MiB', () => {
    expect(walSegmentNext('0000000100000000000000FE', 16 * MiB)).toBe('0000000100000000000000FF');
    expect(walSegmentNext('0000000100000000000000FF', 16 * MiB)).toBe('000000010000000100000000');
    expect(walSegmentNext('00000003000000AB000000FF', 16 * MiB)).toBe('00000003000000AC00000000');
  });

  it('rolls over after segment 3 of 1 GiB and FFF of 1 MiB', () => {
    expect(walSegmentNext('000000010000000000000002', GiB)).toBe('000000010000000000000003');
    expect(walSegmentNext('000000010000000000000003', GiB)).toBe('000000010000000100000000');
    expect(walSegmentNext('000000010000000000000FFE', MiB)).toBe('000000010000000000000FFF');
    expect(walSegmentNext('000000010000000000000FFF', MiB)).toBe('000000010000000100000000');
  });

  it('refuses a segment number too high for the segment size', () => {
    expect(() => walSegmentNext('000000010000000000000100', 16 * MiB)).toThrow('is not a WAL segment name for 16 MiB segments');
  });
});

describe('walSegmentRange', () => {
  it('lists every segment of a range that spans a log boundary (16 MiB)', () => {
    expect(walSegmentRange(1, lsnParse('0/FE000028'), lsnParse('1/01000100'), 16 * MiB)).toEqual([
      '0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000', '000000010000000100000001',
    ]);
  });

  it('lists a range across a log boundary with 1 GiB and 1 MiB segments', () => {
    expect(walSegmentRange(2, lsnParse('0/80000000'), lsnParse('1/40000000'), GiB)).toEqual([
      '000000020000000000000002', '000000020000000000000003', '000000020000000100000000', '000000020000000100000001',
    ]);
    expect(walSegmentRange(1, lsnParse('0/FFE00000'), lsnParse('1/100000'), MiB)).toEqual([
      '000000010000000000000FFE', '000000010000000000000FFF', '000000010000000100000000', '000000010000000100000001',
    ]);
  });

  it('is one segment when start and stop share it, and includes stop on a segment start', () => {
    expect(walSegmentRange(3, lsnParse('0/2000028'), lsnParse('0/2000100'), 16 * MiB)).toEqual(['000000030000000000000002']);
    expect(walSegmentRange(1, lsnParse('0/2000028'), lsnParse('0/3000000'), 16 * MiB)).toEqual(['000000010000000000000002', '000000010000000000000003']);
  });

  it('refuses a stop before the start', () => {
    expect(() => walSegmentRange(1, 10n, 5n, 16 * MiB)).toThrow("WAL range stop '0/5' is before start '0/A'");
  });
});

describe('WAL file names', () => {
  it('parses a segment name, and the segment a partial or backup file starts with', () => {
    expect(walSegmentParse('0000000A0000000B000000FF')).toEqual({ timeline: 10, log: 11, seg: 255 });
    expect(walSegmentParse('000000020000000100000003.partial')).toEqual({ timeline: 2, log: 1, seg: 3 });
    expect(walSegmentParse('000000010000000000000002.00000028.backup')).toEqual({ timeline: 1, log: 0, seg: 2 });
    expect(() => walSegmentParse('00000001000000000000000Z')).toThrow(FormatError);
    expect(() => walSegmentParse('000000010000000000000002.junk')).toThrow("'000000010000000000000002.junk' is not a WAL segment name");
  });

  it('gives the first LSN of a segment', () => {
    expect(walSegmentStartLsn('00000001000000050000001A', 16 * MiB)).toBe(lsnParse('5/1A000000'));
    expect(walSegmentStartLsn('000000010000000100000003', GiB)).toBe(lsnParse('1/C0000000'));
  });

  it('tells segments, partials, history and backup files apart', () => {
    expect(walFileKind('000000010000000000000001')).toBe('segment');
    expect(walFileKind('000000010000000000000001.partial')).toBe('partial');
    expect(walFileKind('00000002.history')).toBe('history');
    expect(walFileKind('000000010000000000000002.00000028.backup')).toBe('backup');
  });

  it('knows no other names', () => {
    for (const name of ['00000001000000000000001', '0000000100000000000000010', '00000001000000000000000a', 'archive_status',
      '2.history', '00000002.history.tmp', '000000010000000000000001.ready', '000000010000000000000002.28.backup', '../000000010000000000000001']) {
      expect(walFileKind(name)).toBeUndefined();
    }
  });

  it('exports the regexes the kinds come from', () => {
    expect(WAL_SEGMENT_RE.test('0000000100000000000000FF')).toBe(true);
    expect(WAL_HISTORY_RE.test('0000000A.history')).toBe(true);
    expect(WAL_PARTIAL_RE.test('0000000100000000000000FF.partial')).toBe(true);
    expect(WAL_BACKUP_RE.test('0000000100000000000000FF.00000060.backup')).toBe(true);
    expect(WAL_SEGMENT_RE.test('0000000100000000000000FF.partial')).toBe(false);
  });
});

describe('walHeaderParse', () => {
  function longHeader(fields: { magic?: number; info?: number; segSize?: number; blockSize?: number; pageAddr?: bigint } = {}): Buffer {
    const page = Buffer.alloc(8192);
    page.writeUInt16LE(fields.magic ?? 0xd110, 0);
    page.writeUInt16LE(fields.info ?? 0x0002, 2);
    page.writeUInt32LE(3, 4);
    page.writeBigUInt64LE(fields.pageAddr ?? 0x5000000n, 8);
    page.writeBigUInt64LE(7300000000000000001n, 24);
    page.writeUInt32LE(fields.segSize ?? 16 * MiB, 32);
    page.writeUInt32LE(fields.blockSize ?? 8192, 36);
    return page;
  }

  it('reads a long page header', () => {
    expect(walHeaderParse(longHeader())).toEqual({
      magic: 0xd110, pgVersion: 15, timeline: 3, pageAddr: 0x5000000n, systemId: '7300000000000000001', segmentSize: 16 * MiB, blockSize: 8192,
    });
  });

  it('refuses a page without a long header', () => {
    expect(() => walHeaderParse(longHeader({ info: 0x0001 }))).toThrow('WAL file does not start with a long page header');
  });

  it('refuses an unknown magic as a format error', () => {
    expect(() => walHeaderParse(longHeader({ magic: 0x1234 }))).toThrow(FormatError);
    expect(() => walHeaderParse(longHeader({ magic: 0x1234 }))).toThrow("unexpected WAL page magic '0x1234' in WAL header");
  });

  it('refuses impossible sizes and a page address inside a segment', () => {
    expect(() => walHeaderParse(longHeader({ segSize: 3 * MiB }))).toThrow("WAL header segment size '3145728'");
    expect(() => walHeaderParse(longHeader({ blockSize: 100 }))).toThrow("WAL header block size '100'");
    expect(() => walHeaderParse(longHeader({ pageAddr: 0x5002000n }))).toThrow("page address '0/5002000' is not the start of a segment");
  });

  it('refuses a buffer too short for the header', () => {
    expect(() => walHeaderParse(Buffer.alloc(39))).toThrow('WAL header is 39 bytes, expected at least 40');
  });
});
