import { PgVersionUnsupportedError } from '../error';
import { crc32c, crc32cUpdate } from './crc32c';
import { PG_CONTROL_DATA_SIZE } from './pg-control';
import { PG_CONTROL_LAYOUTS, PG_VERSIONS, pgControlLayout, pgVersionFromControl, pgVersionFromWalMagic, pgVersionInfo } from './version';

describe('the table of supported majors', () => {
  it('lists 10 to 18 in order, with catalog ranges that neither overlap nor leave gaps', () => {
    expect(PG_VERSIONS.map((v) => v.major)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18]);
    for (let i = 1; i < PG_VERSIONS.length; i++) {
      expect(PG_VERSIONS[i]!.catalogVersionAfter).toBe(PG_VERSIONS[i - 1]!.catalogVersion);
      expect(PG_VERSIONS[i]!.catalogVersion).toBeGreaterThan(PG_VERSIONS[i]!.catalogVersionAfter);
    }
    expect(new Set(PG_VERSIONS.map((v) => v.walMagic)).size).toBe(PG_VERSIONS.length);
  });

  it('keeps every pg_control field it reads inside the 512 bytes PostgreSQL writes atomically', () => {
    for (const layout of Object.values(PG_CONTROL_LAYOUTS)) {
      expect(layout.crc + 4).toBeLessThanOrEqual(PG_CONTROL_DATA_SIZE);
      expect(Math.max(layout.checkPointCopy + 12, layout.blcksz, layout.xlogBlcksz, layout.xlogSegSize, layout.dataChecksumVersion))
        .toBeLessThan(layout.crc);
    }
    expect(pgControlLayout(10).checkPointCopy).toBe(48);
    expect(pgControlLayout(11).crc).toBe(280);
    expect(pgControlLayout(18).crc).toBe(292);
  });

  it('refuses a major it does not know', () => {
    expect(() => pgVersionInfo(9)).toThrow(PgVersionUnsupportedError);
    expect(() => pgVersionInfo(19)).toThrow("PostgreSQL version '19' is not supported");
  });
});

describe('pgVersionFromControl', () => {
  it('maps each release to its major', () => {
    for (const v of PG_VERSIONS) expect(pgVersionFromControl(v.controlVersion, v.catalogVersion)).toBe(v.major);
  });

  it('tells 13 to 16 apart by catalog version, betas included', () => {
    expect(pgVersionFromControl(1300, 202007201)).toBe(13);
    expect(pgVersionFromControl(1300, 202107181)).toBe(14);
    // A beta of 15 carries a catalog version between 14.0's and 15.0's.
    expect(pgVersionFromControl(1300, 202205121)).toBe(15);
    // Above 15.0's is the development of 16.
    expect(pgVersionFromControl(1300, 202209062)).toBe(16);
  });

  it('refuses a development build newer than the newest major of a control version, with a hint', () => {
    expect(() => pgVersionFromControl(1800, 202507011)).toThrow(PgVersionUnsupportedError);
    expect(() => pgVersionFromControl(1800, 202507011)).toThrow(expect.objectContaining({
      message: "unexpected catalog version '202507011' for pg_control version '1800'",
      hint: expect.stringContaining('newer than PostgreSQL 18'),
    }));
    expect(() => pgVersionFromControl(1300, 201909212)).toThrow(expect.objectContaining({ hint: expect.stringContaining('older than PostgreSQL 13') }));
  });

  it('refuses an unknown control version, naming it', () => {
    expect(() => pgVersionFromControl(960, 201608131)).toThrow("unexpected pg_control version '960' (catalog version '201608131')");
  });
});

describe('pgVersionFromWalMagic', () => {
  it('maps each XLOG_PAGE_MAGIC to its major', () => {
    expect(pgVersionFromWalMagic(0xd097)).toBe(10);
    expect(pgVersionFromWalMagic(0xd110)).toBe(15);
    expect(pgVersionFromWalMagic(0xd118)).toBe(18);
  });

  it('refuses an unknown magic', () => {
    expect(() => pgVersionFromWalMagic(0xd093)).toThrow("unexpected WAL page magic '0xD093'");
  });
});

describe('crc32c', () => {
  it('matches the published check values of CRC-32C', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    // RFC 3720 B.4: 32 bytes of zeros, 32 bytes of 0xff.
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('continues over chunks to the same value', () => {
    const bytes = Buffer.from('the quick brown fox jumps over the lazy dog');
    expect(crc32cUpdate(crc32cUpdate(0, bytes.subarray(0, 7)), bytes.subarray(7))).toBe(crc32c(bytes));
  });
});
