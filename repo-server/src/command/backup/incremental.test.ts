import type { Manifest, ManifestFile } from '@openrds/common';
import type { BackupInfo, BackupInfoEntry } from '../../repo/repo';
import { backupPriorSelect, deltaReasons, incrementalPlan } from './incremental';

const f = (name: string, size: number, mtime: number, extra: Partial<ManifestFile> = {}): ManifestFile =>
  ({ name, size, mtime, sha256: `sha-${name}`, repoSize: size, mode: 0o600, ...extra });

const prior = {
  backup: { label: '20261124-100000F', timeline: 1, online: true },
  files: [f('pg_data/a', 10, 100), f('pg_data/b', 10, 100), f('pg_data/c', 10, 100, { reference: '20261120-100000F' }), f('pg_data/global/pg_control', 8192, 100)],
} as unknown as Manifest;

describe('backupPriorSelect', () => {
  const e = (label: string, type: BackupInfoEntry['type']) => ({ label, type, dbId: 1 }) as BackupInfoEntry;
  const info = (backups: BackupInfoEntry[]) => ({ db: { id: 1 }, backups }) as unknown as BackupInfo;
  it('takes a full when there is nothing to build on, and says why', () => {
    expect(backupPriorSelect(info([]), 'incr')).toEqual({ type: 'full', reason: 'no prior backup exists, incr backup has been changed to full' });
  });
  it('builds a diff on the latest full and an incr on the latest backup', () => {
    const list = [e('20261101-000000F', 'full'), e('20261101-000000F_20261102-000000I', 'incr')];
    expect(backupPriorSelect(info(list), 'diff').prior?.label).toBe('20261101-000000F');
    expect(backupPriorSelect(info(list), 'incr').prior?.label).toBe('20261101-000000F_20261102-000000I');
  });
});

describe('deltaReasons', () => {
  const opts = { copyStart: 200, timeline: 1, online: true, explicit: false };
  it('trusts size and mtime when nothing is odd', () => {
    expect(deltaReasons(prior, [f('pg_data/a', 10, 100), f('pg_data/b', 20, 150)], opts)).toEqual([]);
  });
  it('switches to checksums on a future mtime, an older mtime, a same-mtime size change, a timeline switch or --delta', () => {
    expect(deltaReasons(prior, [f('pg_data/a', 10, 300)], opts)[0]).toContain('timestamp in the future');
    expect(deltaReasons(prior, [f('pg_data/a', 10, 99)], opts)[0]).toContain('older timestamp');
    expect(deltaReasons(prior, [f('pg_data/a', 11, 100)], opts)[0]).toContain('changed size with the same timestamp');
    expect(deltaReasons(prior, [], { ...opts, timeline: 2 })[0]).toContain('timeline changed from 1 to 2');
    expect(deltaReasons(prior, [], { ...opts, explicit: true })).toEqual(['--delta was given']);
  });
});

describe('incrementalPlan', () => {
  it('references unchanged files (keeping the original holder), copies changed and new ones and always pg_control', () => {
    const plan = incrementalPlan(prior, [f('pg_data/a', 10, 100), f('pg_data/b', 10, 150), f('pg_data/c', 10, 100), f('pg_data/new', 5, 150),
      f('pg_data/global/pg_control', 8192, 100)], false);
    expect([...plan.reference.keys()]).toEqual(['pg_data/a', 'pg_data/c']);
    expect(plan.reference.get('pg_data/a')?.reference).toBe('20261124-100000F');
    expect(plan.reference.get('pg_data/c')?.reference).toBe('20261120-100000F');
    expect(plan.copy.map((x) => x.name)).toEqual(['pg_data/b', 'pg_data/new', 'pg_data/global/pg_control']);
  });
  it('in delta mode checksums every same-size file instead of trusting mtime', () => {
    const plan = incrementalPlan(prior, [f('pg_data/a', 10, 100), f('pg_data/b', 10, 150), f('pg_data/c', 12, 100)], true);
    expect(plan.checksum.map((x) => x.name)).toEqual(['pg_data/a', 'pg_data/b']);
    expect(plan.copy.map((x) => x.name)).toEqual(['pg_data/c']);
  });
});
