import { FormatError } from '../error';
import { BACKUP_LABEL_RE, backupLabelNew, backupLabelNext, backupLabelParse } from './backup-label';

describe('backup labels', () => {
  const at = new Date(Date.UTC(2026, 10, 24, 15, 31, 48, 900));
  const later = (seconds: number): Date => new Date(at.getTime() + seconds * 1000);

  it('follow pgBackRest: full, and diff or incr after their full label, in UTC', () => {
    expect(backupLabelNew('full', undefined, at)).toBe('20261124-153148F');
    expect(backupLabelNew('diff', '20261124-153148F', later(60))).toBe('20261124-153148F_20261124-153248D');
    expect(backupLabelNew('incr', '20261124-153148F', later(3600))).toBe('20261124-153148F_20261124-163148I');
    // An incr of an incr still names the full backup.
    expect(backupLabelNew('incr', '20261124-153148F_20261124-163148I', later(7200))).toBe('20261124-153148F_20261124-173148I');
    expect(() => backupLabelNew('diff', undefined, at)).toThrow(FormatError);
    expect(() => backupLabelNew('incr', 'latest', at)).toThrow("a incr backup needs the label of the backup it is based on, not 'latest'");
  });

  it('parse into full label, type and time, and refuse anything else', () => {
    expect(backupLabelParse('20261124-153148F')).toEqual({ full: '20261124-153148F', type: 'full', time: '20261124-153148', date: new Date(Date.UTC(2026, 10, 24, 15, 31, 48)) });
    expect(backupLabelParse('20261124-153148F_20261124-153248D')).toMatchObject({ full: '20261124-153148F', type: 'diff', time: '20261124-153248' });
    expect(backupLabelParse('20261124-153148F_20261125-000000I')).toMatchObject({ type: 'incr', date: new Date(Date.UTC(2026, 10, 25)) });
    for (const bad of ['latest', '20261124-153148', '20261124-153148D', '20261124-153148F_', '20261324-153148F', '20261124-256148F']) {
      expect(() => backupLabelParse(bad)).toThrow(FormatError);
    }
    expect(BACKUP_LABEL_RE.test('20261124-153148F_20261124-153248I')).toBe(true);
  });

  it('move a new label past the newest existing one, a second at a time', () => {
    expect(backupLabelNext([], 'full', undefined, at)).toBe('20261124-153148F');
    expect(backupLabelNext(['20261124-153148F'], 'full', undefined, at)).toBe('20261124-153149F');
    expect(backupLabelNext(['20261124-153148F', '20261124-153148F_20261124-153149I'], 'incr', '20261124-153148F', at))
      .toBe('20261124-153148F_20261124-153150I');
    // A clock that went back an hour still yields a label after the newest.
    expect(backupLabelNext(['20261124-163148F'], 'full', undefined, at)).toBe('20261124-163149F');
    expect(backupLabelNext(['20261124-153147F'], 'full', undefined, at)).toBe('20261124-153148F');
  });

  it('keep labels in the order backups were taken when sorted as strings', () => {
    const labels: string[] = [];
    let full = '';
    for (let i = 0; i < 6; i++) {
      const type = i % 3 === 0 ? 'full' : 'incr';
      const label = backupLabelNext(labels, type, type === 'full' ? undefined : full, at);
      if (type === 'full') full = label;
      labels.push(label);
    }
    expect([...labels].sort()).toEqual(labels);
    expect(new Set(labels).size).toBe(6);
  });
});
