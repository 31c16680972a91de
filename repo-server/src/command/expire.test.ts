import { BackupSetInvalidError } from '@openrds/common';
import type { BackupInfo, BackupInfoEntry } from '../repo/repo';
import { expirePlan } from './expire';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-24T12:00:00Z');

function b(label: string, walStart: string, daysAgo: number, prior?: string): BackupInfoEntry {
  const type = label.endsWith('F') ? 'full' : label.endsWith('D') ? 'diff' : 'incr';
  return {
    label, type, ...(prior ? { prior } : {}), timestampStart: NOW - daysAgo * DAY - 1000, timestampStop: NOW - daysAgo * DAY,
    lsnStart: '0/0', lsnStop: '0/0', walStart, walStop: walStart, archiveId: '15-1', dbId: 1,
    size: 1, delta: 1, repoSize: 1, repoDelta: 1, fileCount: 1, online: true,
  };
}

const db = { id: 1, systemId: '1', pgVersion: 15, catalogVersion: 1, controlVersion: 1300 };
const F1 = '20261101-000000F', F2 = '20261110-000000F', F3 = '20261120-000000F';
const info = (): BackupInfo => ({
  version: 1, db, history: [db],
  backups: [
    b(F1, '000000010000000000000002', 23),
    b(`${F1}_20261102-000000D`, '000000010000000000000003', 22, F1),
    b(`${F1}_20261103-000000I`, '000000010000000000000004', 21, `${F1}_20261102-000000D`),
    b(F2, '000000010000000000000010', 14),
    b(`${F2}_20261111-000000D`, '000000010000000000000011', 13, F2),
    b(F3, '000000010000000000000020', 4),
  ],
});
const base = { fullType: 'count' as const, archiveType: 'full' as const, nowMs: NOW };

describe('expirePlan', () => {
  it('expires nothing and warns without repo1-retention-full', () => {
    const p = expirePlan(info(), base);
    expect(p.backups).toEqual([]);
    expect(p.archiveKeepFrom).toEqual({});
    expect(p.warnings[0]).toContain('repo1-retention-full is not set');
  });

  it('keeps the newest fulls by count and expires older fulls with their dependents', () => {
    const p = expirePlan(info(), { ...base, full: 2 });
    expect(p.backups).toEqual([F1, `${F1}_20261102-000000D`, `${F1}_20261103-000000I`]);
    expect(p.archiveKeepFrom).toEqual({ '15-1': '000000010000000000000010' });
  });

  it('keeps WAL for fewer backups with repo1-retention-archive, never past the oldest kept backup', () => {
    expect(expirePlan(info(), { ...base, full: 2, archive: 1 }).archiveKeepFrom).toEqual({ '15-1': '000000010000000000000010' });
    expect(expirePlan(info(), { ...base, full: 3, archive: 1 }).archiveKeepFrom).toEqual({ '15-1': '000000010000000000000002' });
  });

  it('keeps fulls within a time window plus the newest one before it', () => {
    const p = expirePlan(info(), { ...base, fullType: 'time', full: 10 });
    expect(p.backups).toEqual([F1, `${F1}_20261102-000000D`, `${F1}_20261103-000000I`]);
    expect(p.archiveKeepFrom).toEqual({ '15-1': '000000010000000000000010' });
  });

  it('expires differentials beyond repo1-retention-diff with their incrementals', () => {
    const p = expirePlan(info(), { ...base, full: 3, diff: 1 });
    expect(p.backups).toEqual([`${F1}_20261102-000000D`, `${F1}_20261103-000000I`]);
  });

  it('expires one set with --set, never the newest full', () => {
    expect(expirePlan(info(), { ...base, set: F2 }).backups).toEqual([F2, `${F2}_20261111-000000D`]);
    expect(() => expirePlan(info(), { ...base, set: F3 })).toThrow('is the newest full backup and cannot be expired');
    expect(() => expirePlan(info(), { ...base, set: 'nope' })).toThrow(BackupSetInvalidError);
  });
});
