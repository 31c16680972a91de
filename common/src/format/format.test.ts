import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileMissingError, FormatError } from '../error';
import { PosixStorage } from '../storage/posix';
import { backupLabelNew, backupLabelNext, backupLabelParse } from './backup-label';
import { canonicalJson, infoFileLoad, infoFileSave } from './info-file';
import { manifestFileFind, manifestLoad, manifestSave, type Manifest } from './manifest';

describe('info files', () => {
  let dir: string;
  let storage: PosixStorage;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'info-')); storage = new PosixStorage({ path: dir }); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('sorts keys so equal content hashes equally', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
  });

  it('round-trips and writes a .copy with the same content', async () => {
    await infoFileSave(storage, 's/archive.info', { db: { id: 1 }, version: 1 });
    expect(await infoFileLoad(storage, 's/archive.info')).toEqual({ db: { id: 1 }, version: 1 });
    expect(fs.readFileSync(path.join(dir, 's/archive.info.copy'), 'utf8')).toBe(fs.readFileSync(path.join(dir, 's/archive.info'), 'utf8'));
  });

  it('falls back to the copy when the main file is damaged or missing', async () => {
    await infoFileSave(storage, 'x.info', { n: 1 });
    fs.writeFileSync(path.join(dir, 'x.info'), fs.readFileSync(path.join(dir, 'x.info'), 'utf8').replace('"n": 1', '"n": 2'));
    expect(await infoFileLoad(storage, 'x.info')).toEqual({ n: 1 });
    fs.rmSync(path.join(dir, 'x.info'));
    expect(await infoFileLoad(storage, 'x.info')).toEqual({ n: 1 });
  });

  it('fails naming both files when both are damaged, and FileMissingError when both are missing', async () => {
    await infoFileSave(storage, 'y.info', { n: 1 });
    fs.writeFileSync(path.join(dir, 'y.info'), '{ not json');
    fs.writeFileSync(path.join(dir, 'y.info.copy'), '{"n":1,"checksum":"00"}');
    await expect(infoFileLoad(storage, 'y.info')).rejects.toThrow(FormatError);
    await expect(infoFileLoad(storage, 'y.info')).rejects.toThrow("unable to load 'y.info'");
    await expect(infoFileLoad(storage, 'none.info')).rejects.toThrow(FileMissingError);
  });

  it('round-trips a manifest and finds files by name', async () => {
    const m: Manifest = {
      version: 1,
      backup: { label: '20261124-153148F', type: 'full', timestampStart: 1, timestampStop: 2, lsnStart: '0/2000028', lsnStop: '0/2000138',
        walStart: '000000010000000000000002', walStop: '000000010000000000000002', timeline: 1, online: true, archiveId: '15-1' },
      db: { id: 1, systemId: '7300000000000000001', pgVersion: 15, catalogVersion: 202209061, controlVersion: 1300, walSegmentSize: 16777216, pageSize: 8192, checksumVersion: 1 },
      options: { compressType: 'zst', compressLevel: 3, processMax: 1, checksumPage: false },
      targets: [{ name: 'pg_data', type: 'path', path: '/pg' }], paths: [{ name: 'pg_data', mode: 0o700 }], links: [],
      files: ['pg_data/a', 'pg_data/b', 'pg_data/c'].map((name) => ({ name, size: 1, sha256: 'x', repoSize: 1, mtime: 1, mode: 0o600 })),
    };
    await manifestSave(storage, 'b/backup.manifest', m);
    const back = await manifestLoad(storage, 'b/backup.manifest');
    expect(back).toEqual(m);
    expect(manifestFileFind(back, 'pg_data/b')?.name).toBe('pg_data/b');
    expect(manifestFileFind(back, 'pg_data/zz')).toBeUndefined();
    await infoFileSave(storage, 'bad.manifest', { ...m, files: [{ name: 1 }] });
    await expect(manifestLoad(storage, 'bad.manifest')).rejects.toThrow("invalid manifest: field 'files[0]'");
  });
});

describe('backup labels', () => {
  const d = new Date(Date.UTC(2026, 10, 24, 15, 31, 48));
  it('follows pgBackRest: full, diff and incr', () => {
    expect(backupLabelNew('full', undefined, d)).toBe('20261124-153148F');
    expect(backupLabelNew('diff', '20261124-153148F', new Date(d.getTime() + 60000))).toBe('20261124-153148F_20261124-153248D');
    expect(backupLabelNew('incr', '20261124-153148F', d)).toBe('20261124-153148F_20261124-153148I');
    expect(backupLabelParse('20261124-153148F_20261124-153248D')).toEqual({ full: '20261124-153148F', type: 'diff', time: '20261124-153248' });
    expect(() => backupLabelParse('latest')).toThrow(FormatError);
  });
  it('moves past the latest existing label', () => {
    expect(backupLabelNext(['20261124-153148F'], 'full', undefined, d)).toBe('20261124-153149F');
    expect(backupLabelNext([], 'full', undefined, d)).toBe('20261124-153148F');
  });
});
