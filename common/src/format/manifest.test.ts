import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FormatError } from '../error';
import { logInit } from '../log';
import { PosixStorage } from '../storage/posix';
import { infoFileSave } from './info-file';
import { MANIFEST_NAME, manifestFileFind, manifestLoad, manifestSave, manifestValidate, type Manifest } from './manifest';

function manifestExample(): Manifest {
  return {
    version: 1,
    backup: {
      label: '20261124-153148F', type: 'full', timestampStart: 1764000000000, timestampCopyStart: 1764000001000, timestampStop: 1764000060000,
      lsnStart: '0/2000028', lsnStop: '0/2000138', walStart: '000000010000000000000002', walStop: '000000010000000000000002',
      timeline: 1, online: true, archiveId: '15-1', backupSize: 3, repoSize: 3,
    },
    db: {
      id: 1, systemId: '7300000000000000001', pgVersion: 15, catalogVersion: 202209061, controlVersion: 1300,
      walSegmentSize: 16777216, pageSize: 8192, checksumVersion: 1,
    },
    options: { compressType: 'zst', compressLevel: 3, processMax: 2, checksumPage: true },
    databases: [{ name: 'postgres', oid: 5 }],
    targets: [{ name: 'pg_data', type: 'path', path: '/pg' }, { name: 'pg_tblspc/16385', type: 'link', path: '/ts', tablespaceId: 16385, tablespaceName: 'ts1' }],
    paths: [{ name: 'pg_data', mode: 0o700 }, { name: 'pg_tblspc/16385', mode: 0o700, user: 'postgres', group: 'postgres' }],
    links: [{ name: 'pg_data/pg_tblspc/16385', destination: '/ts' }],
    files: ['pg_data/PG_VERSION', 'pg_data/base/1/1259', 'pg_data/global/pg_control'].map((name, i) => ({
      name, size: 1, sha256: String(i).repeat(64), repoSize: 1, mtime: 1764000000, mode: 0o600,
      ...(i === 1 ? { reference: '20261123-000000F', pageChecksumError: { pages: [0, 7] } } : {}),
    })),
  };
}

describe('manifest', () => {
  let dir: string;
  let storage: PosixStorage;
  beforeAll(() => logInit({ process: 'test', levelConsole: 'off' }));
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'manifest-')); storage = new PosixStorage({ path: dir }); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips through save and load, with a .copy', async () => {
    const m = manifestExample();
    const key = `backup/main/${m.backup.label}/${MANIFEST_NAME}`;
    await manifestSave(storage, key, m);
    expect(await manifestLoad(storage, key)).toEqual(m);
    expect(fs.existsSync(path.join(dir, `${key}.copy`))).toBe(true);
  });

  it('finds files by name with a binary search', () => {
    const m = manifestExample();
    for (const f of m.files) expect(manifestFileFind(m, f.name)).toBe(f);
    expect(manifestFileFind(m, 'pg_data/base')).toBeUndefined();
    expect(manifestFileFind(m, 'a')).toBeUndefined();
    expect(manifestFileFind(m, 'zz')).toBeUndefined();
    expect(manifestFileFind({ ...m, files: [] }, 'pg_data/PG_VERSION')).toBeUndefined();
  });

  it.each([
    ['version', (m: any) => { m.version = 2; }, "invalid manifest: field 'version' has the invalid value 2"],
    ['backup', (m: any) => { delete m.backup; }, "invalid manifest: field 'backup' is missing"],
    ['backup.type', (m: any) => { m.backup.type = 'weekly'; }, "invalid manifest: field 'backup.type' has the invalid value \"weekly\""],
    ['backup.prior', (m: any) => { m.backup.prior = 5; }, "invalid manifest: field 'backup.prior' has the invalid value 5"],
    ['db.systemId', (m: any) => { m.db.systemId = 7300; }, "invalid manifest: field 'db.systemId' has the invalid value 7300"],
    ['options.compressType', (m: any) => { m.options.compressType = 'bz2'; }, "invalid manifest: field 'options.compressType' has the invalid value \"bz2\""],
    ['databases[0].oid', (m: any) => { m.databases[0].oid = -1; }, "invalid manifest: field 'databases[0].oid' has the invalid value -1"],
    ['targets[1].type', (m: any) => { m.targets[1].type = 'dir'; }, "invalid manifest: field 'targets[1].type' has the invalid value \"dir\""],
    ['paths[0].mode', (m: any) => { m.paths[0].mode = '700'; }, "invalid manifest: field 'paths[0].mode' has the invalid value \"700\""],
    ['links[0].destination', (m: any) => { delete m.links[0].destination; }, "invalid manifest: field 'links[0].destination' is missing"],
    ['files', (m: any) => { m.files = {}; }, "invalid manifest: field 'files' has the invalid value {}"],
    ['files[2].sha256', (m: any) => { delete m.files[2].sha256; }, "invalid manifest: field 'files[2].sha256' is missing"],
    ['files[1].size', (m: any) => { m.files[1].size = 1.5; }, "invalid manifest: field 'files[1].size' has the invalid value 1.5"],
    ['files[1].pageChecksumError', (m: any) => { m.files[1].pageChecksumError = { pages: ['x'] }; },
      "invalid manifest: field 'files[1].pageChecksumError.pages' has the invalid value [\"x\"]"],
    ['file order', (m: any) => { m.files.reverse(); }, "invalid manifest: 'files' is not sorted by name or has a duplicate at 'files[1]' ('pg_data/base/1/1259')"],
    ['duplicate file', (m: any) => { m.files[1].name = m.files[0].name; }, "invalid manifest: 'files' is not sorted by name or has a duplicate at 'files[1]' ('pg_data/PG_VERSION')"],
    ['pg_data target', (m: any) => { m.targets.shift(); }, "invalid manifest: no target 'pg_data'"],
  ])('refuses a bad %s with FormatError naming it', (_what, damage, message) => {
    const m = manifestExample();
    damage(m);
    expect(() => manifestValidate(m)).toThrow(new FormatError(message));
  });

  it('accepts a manifest without its optional fields', () => {
    const m = manifestExample();
    delete m.databases;
    delete m.backup.timestampCopyStart;
    delete m.backup.backupSize;
    m.files = m.files.map(({ reference: _r, pageChecksumError: _p, ...f }) => f);
    expect(manifestValidate(m)).toBe(m);
  });

  it('refuses to save a manifest that would not load back, and to load one that does not validate', async () => {
    const m = manifestExample();
    m.files.reverse();
    await expect(manifestSave(storage, 'bad/backup.manifest', m)).rejects.toThrow(FormatError);
    expect(fs.existsSync(path.join(dir, 'bad'))).toBe(false);
    await infoFileSave(storage, 'worse/backup.manifest', { ...manifestExample(), files: [{ name: 1 }] });
    await expect(manifestLoad(storage, 'worse/backup.manifest')).rejects.toThrow("invalid manifest: field 'files[0].name' has the invalid value 1");
  });
});
