import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileMissingError, PgControlInvalidError, PgVersionUnsupportedError } from '../error';
import { crc32c } from './crc32c';
import { PG_CONTROL_SIZE, PG_CONTROL_STATE, pgControlParse, pgControlRead, pgControlReadBytes, pgControlReadValid } from './pg-control';
import { PG_VERSIONS, pgControlLayout } from './version';
import { walHeaderParse, walSegmentStartLsn } from './wal';

// Fixtures: pg_control and the first WAL page of a fresh initdb of each major, and what the
// server reported for them (see test-fixtures/pg/make-fixtures.sh).
const FIXTURES = path.resolve(__dirname, '..', '..', 'test-fixtures', 'pg');
const versions = fs.readdirSync(FIXTURES).filter((d) => /^\d+$/.test(d)).map(Number).sort((a, b) => a - b);

interface Expected {
  pgVersion: number; systemId: string; controlVersion: number; catalogVersion: number; state: number; checkpointLsn: string;
  redoLsn: string; timeline: number; pageSize: number; walPageSize: number; walSegmentSize: number; checksumVersion: number;
  walSegment: string;
}

function fixture(v: number): { control: Buffer; walPage: Buffer; expected: Expected } {
  const dir = path.join(FIXTURES, String(v));
  return {
    control: fs.readFileSync(path.join(dir, 'pg_control')),
    walPage: fs.readFileSync(path.join(dir, 'wal-page0')),
    expected: JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected,
  };
}

/** A fixture with one uint32 changed and the CRC recomputed, so that only the field check can fail. */
function withField(v: number, offset: number, value: number): Buffer {
  const buf = Buffer.from(fixture(v).control);
  buf.writeUInt32LE(value, offset);
  const crcAt = pgControlLayout(v).crc;
  buf.writeUInt32LE(crc32c(buf.subarray(0, crcAt)), crcAt);
  return buf;
}

describe('pg_control of real clusters, PostgreSQL 10 to 18', () => {
  it('has a fixture for every supported major', () => {
    expect(versions).toEqual(PG_VERSIONS.map((v) => v.major));
  });

  it('has fixtures that vary: checksums on and off, several WAL segment sizes', () => {
    const all = versions.map((v) => fixture(v).expected);
    expect(new Set(all.map((e) => e.checksumVersion))).toEqual(new Set([0, 1]));
    expect(new Set(all.map((e) => e.walSegmentSize)).size).toBeGreaterThanOrEqual(3);
  });

  it.each(versions)('PostgreSQL %i: reads what the server itself reported', (v) => {
    const { control, expected } = fixture(v);
    expect(control.length).toBe(PG_CONTROL_SIZE);
    expect(pgControlParse(control)).toEqual({
      systemId: expected.systemId, controlVersion: expected.controlVersion, catalogVersion: expected.catalogVersion,
      pgVersion: v, state: PG_CONTROL_STATE.shutDown, checkpointLsn: expected.checkpointLsn, redoLsn: expected.redoLsn,
      timeline: expected.timeline, pageSize: expected.pageSize, walPageSize: expected.walPageSize,
      walSegmentSize: expected.walSegmentSize, checksumVersion: expected.checksumVersion,
    });
  });

  it.each(versions)('PostgreSQL %i: the first WAL page names the same system, version and segment size', (v) => {
    const { walPage, expected } = fixture(v);
    const header = walHeaderParse(walPage);
    expect(header).toEqual({
      magic: PG_VERSIONS.find((x) => x.major === v)!.walMagic, pgVersion: v, systemId: expected.systemId,
      segmentSize: expected.walSegmentSize, blockSize: expected.walPageSize, timeline: 1,
      pageAddr: walSegmentStartLsn(expected.walSegment, expected.walSegmentSize),
    });
  });

  it('agrees with pg_controldata wherever the fixture has its output', () => {
    const checked = versions.filter((v) => fs.existsSync(path.join(FIXTURES, String(v), 'pg_controldata.txt')));
    expect(checked.length).toBeGreaterThan(0);
    for (const v of checked) {
      const text = fs.readFileSync(path.join(FIXTURES, String(v), 'pg_controldata.txt'), 'utf8');
      const field = (label: string): string => {
        const line = text.split('\n').find((l) => l.startsWith(`${label}:`));
        if (!line) throw new Error(`pg_controldata of ${v} has no '${label}'`);
        return line.slice(label.length + 1).trim();
      };
      const parsed = pgControlParse(fixture(v).control);
      expect({
        systemId: parsed.systemId, controlVersion: parsed.controlVersion, catalogVersion: parsed.catalogVersion,
        state: parsed.state, checkpointLsn: parsed.checkpointLsn, redoLsn: parsed.redoLsn, timeline: parsed.timeline,
        pageSize: parsed.pageSize, walPageSize: parsed.walPageSize, walSegmentSize: parsed.walSegmentSize,
        checksumVersion: parsed.checksumVersion,
      }).toEqual({
        systemId: field('Database system identifier'), controlVersion: Number(field('pg_control version number')),
        catalogVersion: Number(field('Catalog version number')),
        state: field('Database cluster state') === 'shut down' ? PG_CONTROL_STATE.shutDown : -1,
        checkpointLsn: field('Latest checkpoint location'), redoLsn: field("Latest checkpoint's REDO location"),
        timeline: Number(field("Latest checkpoint's TimeLineID")), pageSize: Number(field('Database block size')),
        walPageSize: Number(field('WAL block size')), walSegmentSize: Number(field('Bytes per WAL segment')),
        checksumVersion: Number(field('Data page checksum version')),
      });
    }
  });
});

describe('pg_control validation', () => {
  it.each(versions)('PostgreSQL %i: one flipped byte before the CRC makes the checksum invalid', (v) => {
    const bad = Buffer.from(fixture(v).control);
    bad[100] = bad[100]! ^ 0x01;
    expect(() => pgControlParse(bad)).toThrow(PgControlInvalidError);
    expect(() => pgControlParse(bad)).toThrow(/^pg_control checksum is invalid/);
  });

  it('ignores bytes after the CRC (only the data before it is covered)', () => {
    const control = Buffer.from(fixture(18).control);
    control[pgControlLayout(18).crc + 4] = 0x55;
    control[4000] = 0x55;
    expect(pgControlParse(control).pgVersion).toBe(18);
  });

  it('finds the CRC where each version keeps it (PostgreSQL 18 moved it by 4 bytes)', () => {
    const control17 = fixture(17).control;
    expect(control17.readUInt32LE(288)).toBe(crc32c(control17.subarray(0, 288)));
    const control18 = fixture(18).control;
    expect(control18.readUInt32LE(292)).toBe(crc32c(control18.subarray(0, 292)));
  });

  it('refuses a page size that is not a power of two from 1 KiB to 32 KiB', () => {
    const layout = pgControlLayout(16);
    expect(() => pgControlParse(withField(16, layout.blcksz, 12288))).toThrow("pg_control page size '12288' is not a power of two");
    expect(() => pgControlParse(withField(16, layout.blcksz, 65536))).toThrow(PgControlInvalidError);
    expect(pgControlParse(withField(16, layout.blcksz, 32768)).pageSize).toBe(32768);
  });

  it('refuses a WAL segment size that is not a power of two from 1 MiB to 1 GiB', () => {
    const layout = pgControlLayout(11);
    expect(() => pgControlParse(withField(11, layout.xlogSegSize, 3 * 1024 * 1024))).toThrow("WAL segment size '3145728'");
    expect(() => pgControlParse(withField(11, layout.xlogSegSize, 512 * 1024))).toThrow(PgControlInvalidError);
    expect(() => pgControlParse(withField(11, layout.xlogSegSize, 2 * 1024 ** 3))).toThrow(PgControlInvalidError);
    expect(pgControlParse(withField(11, layout.xlogSegSize, 1024 ** 3)).walSegmentSize).toBe(1024 ** 3);
  });

  it('refuses a buffer shorter than the data of pg_control', () => {
    expect(() => pgControlParse(fixture(15).control.subarray(0, 300))).toThrow('pg_control is 300 bytes, expected 8192');
  });

  it('refuses an unknown control version with a hint', () => {
    const bad = Buffer.from(fixture(15).control);
    bad.writeUInt32LE(1900, 8);
    expect(() => pgControlParse(bad)).toThrow(PgVersionUnsupportedError);
    expect(() => pgControlParse(bad)).toThrow("unexpected pg_control version '1900'");
  });
});

describe('pgControlReadValid: torn reads', () => {
  const tear = (buf: Buffer, at: number): Buffer => Buffer.from(buf.map((b, i) => (i === at ? b ^ 0xff : b)));

  it('re-reads until the checksum is valid (PostgreSQL was rewriting the file)', async () => {
    const good = fixture(16).control;
    const reads = [tear(good, 40), tear(good, 41), good];
    let n = 0;
    const { control, bytes } = await pgControlReadValid(async () => reads[n++]!, 'pg_control', { retryMs: 1 });
    expect(n).toBe(3);
    expect(control.systemId).toBe(fixture(16).expected.systemId);
    expect(bytes.equals(good)).toBe(true);
  });

  it('waits 50 ms between reads by default', async () => {
    const good = fixture(16).control;
    const reads = [tear(good, 40), good];
    const times: number[] = [];
    await pgControlReadValid(async () => { times.push(Date.now()); return reads[times.length - 1]!; });
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(45);
  });

  it('gives up when the same bad bytes come back twice (the file is damaged)', async () => {
    const torn = tear(fixture(16).control, 40);
    let n = 0;
    const read = pgControlReadValid(async () => { n++; return Buffer.from(torn); }, '/pg/global/pg_control', { retryMs: 1 });
    await expect(read).rejects.toThrow(PgControlInvalidError);
    await expect(read).rejects.toThrow(/^pg_control checksum is invalid .* in '\/pg\/global\/pg_control'$/);
    expect(n).toBe(2);
  });

  it('treats a file that is not 8192 bytes as invalid, like a bad checksum', async () => {
    const short = fixture(16).control.subarray(0, 512);
    await expect(pgControlReadValid(async () => short, 'pg_control', { retryMs: 1 })).rejects.toThrow('pg_control is 512 bytes, expected 8192');
  });

  it('does not retry errors other than an invalid pg_control', async () => {
    let n = 0;
    const unsupported = Buffer.from(fixture(16).control);
    unsupported.writeUInt32LE(42, 8);
    await expect(pgControlReadValid(async () => { n++; return unsupported; }, 'pg_control', { retryMs: 1 })).rejects.toThrow(PgVersionUnsupportedError);
    expect(n).toBe(1);
  });
});

describe('pgControlRead and pgControlReadBytes on a data directory', () => {
  let pgPath: string;
  beforeEach(() => {
    pgPath = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-pg-control-'));
    fs.mkdirSync(path.join(pgPath, 'global'));
  });
  afterEach(() => fs.rmSync(pgPath, { recursive: true, force: true }));

  it('reads <pgPath>/global/pg_control', async () => {
    fs.writeFileSync(path.join(pgPath, 'global', 'pg_control'), fixture(17).control);
    expect((await pgControlRead(pgPath)).walSegmentSize).toBe(32 * 1024 * 1024);
    expect((await pgControlReadBytes(pgPath)).equals(fixture(17).control)).toBe(true);
  });

  it('gets the valid bytes when the file is rewritten while it is read', async () => {
    const file = path.join(pgPath, 'global', 'pg_control');
    const good = fixture(14).control;
    const torn = Buffer.from(good);
    torn[60] = torn[60]! ^ 0xff;
    fs.writeFileSync(file, torn);
    // PostgreSQL finishes its write well within the 50 ms before the second read.
    setTimeout(() => fs.writeFileSync(file, good), 5);
    expect((await pgControlReadBytes(pgPath)).equals(good)).toBe(true);
  });

  it('names the file and the cause when it stays damaged', async () => {
    const torn = Buffer.from(fixture(14).control);
    torn[60] = torn[60]! ^ 0xff;
    fs.writeFileSync(path.join(pgPath, 'global', 'pg_control'), torn);
    await expect(pgControlRead(pgPath)).rejects.toThrow(`in '${path.join(pgPath, 'global', 'pg_control')}'`);
  });

  it('says which directory is not a cluster when pg_control is missing', async () => {
    const read = pgControlRead(path.join(pgPath, 'nope'));
    await expect(read).rejects.toThrow(FileMissingError);
    await expect(read).rejects.toMatchObject({ hint: expect.stringContaining('pg1-path') });
  });
});
