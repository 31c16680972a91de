import { BackupSetInvalidError, OptionRequiredError } from '@openrds/common';
import type { BackupInfo, BackupInfoEntry } from '../../repo/repo';
import type { Manifest } from '@openrds/common';
import { recoverySettings, restoreSetSelect, tablespaceRemap, targetTimeParse } from './restore';

function entry(label: string, stopIso: string): BackupInfoEntry {
  return {
    label, type: 'full', timestampStart: Date.parse(stopIso) - 1000, timestampStop: Date.parse(stopIso), lsnStart: '0/2000028',
    lsnStop: '0/2000100', walStart: '000000010000000000000002', walStop: '000000010000000000000002', archiveId: '15-1', dbId: 1,
    size: 1, delta: 1, repoSize: 1, repoDelta: 1, fileCount: 1, online: true,
  };
}

const db = { id: 1, systemId: '7', pgVersion: 15, catalogVersion: 202209061, controlVersion: 1300 };
const info: BackupInfo = {
  version: 1, db, history: [db],
  backups: [entry('20261124-100000F', '2026-11-24T10:00:05Z'), entry('20261124-120000F', '2026-11-24T12:00:05Z')],
};

describe('targetTimeParse', () => {
  it('reads the forms a DBA writes for recovery_target_time', () => {
    expect(targetTimeParse('2026-11-24 15:31:48.123+00')).toBe(Date.parse('2026-11-24T15:31:48.123Z'));
    expect(targetTimeParse('2026-11-24 15:31:48+0100')).toBe(Date.parse('2026-11-24T14:31:48Z'));
    expect(targetTimeParse('2026-11-24T15:31:48Z')).toBe(Date.parse('2026-11-24T15:31:48Z'));
    expect(targetTimeParse('yesterday-ish')).toBeUndefined();
  });
});

describe('restoreSetSelect', () => {
  it('takes the newest backup by default', () => {
    expect(restoreSetSelect(info, undefined, 'default', undefined).label).toBe('20261124-120000F');
  });
  it('takes the newest backup that ended before a time target', () => {
    expect(restoreSetSelect(info, undefined, 'time', '2026-11-24 11:00:00+00').label).toBe('20261124-100000F');
    expect(restoreSetSelect(info, undefined, 'time', '2026-11-24 13:00:00+00').label).toBe('20261124-120000F');
  });
  it('takes --set as given and refuses an unknown one', () => {
    expect(restoreSetSelect(info, '20261124-100000F', 'default', undefined).label).toBe('20261124-100000F');
    expect(() => restoreSetSelect(info, '20250101-000000F', 'default', undefined)).toThrow(BackupSetInvalidError);
  });
  it('refuses a stanza without backups', () => {
    expect(() => restoreSetSelect({ ...info, backups: [] }, undefined, 'default', undefined)).toThrow('the stanza has no backup to restore');
  });
});

describe('recoverySettings', () => {
  const base = { targetAction: 'pause', targetExclusive: false, pgVersion: 15, extra: {} };
  it('writes only restore_command and recovery.signal for the default type', () => {
    expect(recoverySettings({ ...base, type: 'default' })).toEqual({ settings: [], signal: 'recovery.signal', restoreCommand: true });
  });
  it('writes the target, the action and inclusiveness for a time target', () => {
    const r = recoverySettings({ ...base, type: 'time', target: '2026-11-24 10:00:00+00', targetAction: 'promote', targetExclusive: true });
    expect(r.settings).toEqual([
      { key: 'recovery_target_time', value: '2026-11-24 10:00:00+00' },
      { key: 'recovery_target_inclusive', value: 'false' },
      { key: 'recovery_target_action', value: 'promote' },
    ]);
  });
  it('forces the current timeline for immediate on PostgreSQL 12+', () => {
    expect(recoverySettings({ ...base, type: 'immediate' }).settings).toEqual([
      { key: 'recovery_target', value: 'immediate' },
      { key: 'recovery_target_action', value: 'pause' },
      { key: 'recovery_target_timeline', value: 'current' },
    ]);
  });
  it('turns archiving off in the restored cluster with archive-mode=off', () => {
    expect(recoverySettings({ ...base, type: 'default', archiveMode: 'off' }).settings).toEqual([{ key: 'archive_mode', value: 'off' }]);
    expect(recoverySettings({ ...base, type: 'default', archiveMode: 'preserve' }).settings).toEqual([]);
  });

  it('requires a target for time, xid, lsn and name', () => {
    for (const type of ['time', 'xid', 'lsn', 'name']) expect(() => recoverySettings({ ...base, type })).toThrow(OptionRequiredError);
  });
  it('writes standby.signal for standby, and nothing for none', () => {
    expect(recoverySettings({ ...base, type: 'standby' }).signal).toBe('standby.signal');
    expect(recoverySettings({ ...base, type: 'none' })).toEqual({ settings: [], signal: '', restoreCommand: false });
  });
});

describe('tablespaceRemap', () => {
  const manifest = {
    backup: { label: '20261124-100000F' },
    targets: [
      { name: 'pg_data', type: 'path', path: '/pg' },
      { name: 'pg_tblspc/16385', type: 'link', path: '/ts1', tablespaceId: 16385, tablespaceName: 'ts1' },
      { name: 'pg_tblspc/16386', type: 'link', path: '/ts2', tablespaceId: 16386, tablespaceName: 'ts2' },
    ],
  } as unknown as Manifest;

  it('keeps every path without a map', () => {
    expect(tablespaceRemap(manifest, {})).toEqual({ targets: manifest.targets.slice(1) });
  });

  it('moves tablespaces by name or oid and writes a tablespace_map naming every tablespace', () => {
    const r = tablespaceRemap(manifest, { ts1: '/new1', 16386: '/new2' });
    expect(r.targets.map((t) => t.path)).toEqual(['/new1', '/new2']);
    expect(r.tablespaceMap).toBe('16385 /new1\n16386 /new2\n');
    expect(tablespaceRemap(manifest, { ts2: '/x' }).tablespaceMap).toBe('16385 /ts1\n16386 /x\n');
  });

  it('refuses a tablespace the backup does not have', () => {
    expect(() => tablespaceRemap(manifest, { nope: '/x' })).toThrow("tablespace 'nope' of option 'tablespace-map' is not in backup set 20261124-100000F");
  });
});
