import * as fs from 'node:fs';
import * as path from 'node:path';
import { PgControlInvalidError, PgVersionUnsupportedError } from '../error';
import { pgControlParse, pgControlReadValid } from './pg-control';
import { PG_VERSIONS, pgVersionFromControl } from './version';
import { walHeaderParse } from './wal';

const FIXTURES = path.resolve(__dirname, '..', '..', 'test-fixtures', 'pg');
const versions = fs.readdirSync(FIXTURES).map(Number).sort((a, b) => a - b);

function fixture(v: number): { control: Buffer; wal: Buffer; expected: Record<string, string | number> } {
  return {
    control: fs.readFileSync(path.join(FIXTURES, String(v), 'pg_control')),
    wal: fs.readFileSync(path.join(FIXTURES, String(v), 'wal-page0')),
    expected: JSON.parse(fs.readFileSync(path.join(FIXTURES, String(v), 'expected.json'), 'utf8')),
  };
}

describe('pg_control of real clusters, PostgreSQL 10 to 18', () => {
  it('has a fixture for every supported major', () => {
    expect(versions).toEqual(PG_VERSIONS.map((v) => v.major));
  });

  it.each(versions)('PostgreSQL %i: reads what the server itself reports', (v) => {
    const { control, expected } = fixture(v);
    const parsed = pgControlParse(control);
    expect(parsed).toEqual({
      systemId: expected.systemId, controlVersion: expected.controlVersion, catalogVersion: expected.catalogVersion,
      pgVersion: expected.pgVersion, state: expected.state, checkpointLsn: expected.checkpointLsn, redoLsn: expected.redoLsn,
      timeline: expected.timeline, pageSize: expected.pageSize, walPageSize: expected.walPageSize,
      walSegmentSize: expected.walSegmentSize, checksumVersion: expected.checksumVersion,
    });
  });

  it.each(versions)('PostgreSQL %i: the first WAL page names the same system, version and segment size', (v) => {
    const { wal, expected } = fixture(v);
    const h = walHeaderParse(wal);
    expect(h.pgVersion).toBe(v);
    expect(h.systemId).toBe(expected.systemId);
    expect(h.segmentSize).toBe(expected.walSegmentSize);
    expect(h.blockSize).toBe(expected.walPageSize);
    expect(h.timeline).toBe(1);
  });

  it('refuses a pg_control with one flipped byte', () => {
    const bad = Buffer.from(fixture(15).control);
    bad[100] = bad[100]! ^ 0x01;
    expect(() => pgControlParse(bad)).toThrow(PgControlInvalidError);
    expect(() => pgControlParse(bad)).toThrow('pg_control checksum is invalid');
  });

  it('refuses an unknown control version with a hint', () => {
    const bad = Buffer.from(fixture(15).control);
    bad.writeUInt32LE(9999, 8);
    expect(() => pgControlParse(bad)).toThrow(PgVersionUnsupportedError);
  });

  it('maps a catalog version between releases to the older major of the same control version', () => {
    expect(pgVersionFromControl(1300, 202209061)).toBe(15);
    expect(pgVersionFromControl(1300, 202209062)).toBe(15);
    expect(pgVersionFromControl(1300, 202107181)).toBe(14);
    expect(() => pgVersionFromControl(1300, 201000000)).toThrow(PgVersionUnsupportedError);
  });
});

describe('pgControlReadValid: torn reads', () => {
  it('re-reads until the checksum is valid (PostgreSQL was writing the file)', async () => {
    const good = fixture(16).control;
    const torn = Buffer.from(good);
    torn[40] = torn[40]! ^ 0xff;
    const reads = [torn, Buffer.from(torn.map((b, i) => (i === 41 ? b ^ 1 : b))), good];
    let n = 0;
    const { control } = await pgControlReadValid(async () => reads[n++]!);
    expect(n).toBe(3);
    expect(control.pgVersion).toBe(16);
  });

  it('gives up when the same bad bytes come back twice', async () => {
    const torn = Buffer.from(fixture(16).control);
    torn[40] = torn[40]! ^ 0xff;
    let n = 0;
    await expect(pgControlReadValid(async () => { n++; return torn; }, '/pg/global/pg_control')).rejects.toThrow("pg_control checksum is invalid in '/pg/global/pg_control'");
    expect(n).toBe(2);
  });
});
