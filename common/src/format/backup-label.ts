import { FormatError } from '../error';

export type BackupType = 'full' | 'diff' | 'incr';

/** A backup label as pgBackRest writes them: 'YYYYMMDD-HHMMSSF' or '<full label>_YYYYMMDD-HHMMSSD|I'. */
export const BACKUP_LABEL_RE = /^(\d{8}-\d{6})F(?:_(\d{8}-\d{6})([DI]))?$/;

/** 'YYYYMMDD-HHMMSS' of a date, in UTC. */
function backupLabelStamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** The date of a 'YYYYMMDD-HHMMSS' stamp (UTC); FormatError when it is not a real time. */
function backupLabelStampDate(stamp: string, label: string): Date {
  const n = (from: number, to: number): number => Number(stamp.slice(from, to));
  const d = new Date(Date.UTC(n(0, 4), n(4, 6) - 1, n(6, 8), n(9, 11), n(11, 13), n(13, 15)));
  if (backupLabelStamp(d) !== stamp) throw new FormatError(`'${label}' is not a backup label: '${stamp}' is not a valid time`);
  return d;
}

/** The label of a new backup taken at `date`: full 'YYYYMMDD-HHMMSSF', diff/incr '<full>_YYYYMMDD-HHMMSSD|I' (UTC). */
export function backupLabelNew(type: BackupType, priorFull: string | undefined, date: Date): string {
  if (type === 'full') return `${backupLabelStamp(date)}F`;
  if (priorFull === undefined || !BACKUP_LABEL_RE.test(priorFull)) {
    throw new FormatError(`a ${type} backup needs the label of the backup it is based on, not '${String(priorFull)}'`);
  }
  // Only the full part: a diff or incr of an incr still carries the label of its full backup.
  return `${priorFull.slice(0, 16)}_${backupLabelStamp(date)}${type === 'diff' ? 'D' : 'I'}`;
}

export interface BackupLabelParts {
  /** Label of the full backup this one belongs to (itself for a full). */
  full: string;
  type: BackupType;
  /** 'YYYYMMDD-HHMMSS' of this backup. */
  time: string;
  /** The same time as a Date (UTC). */
  date: Date;
}

/** The parts of a label; FormatError for anything that is not one. */
export function backupLabelParse(label: string): BackupLabelParts {
  const m = BACKUP_LABEL_RE.exec(label);
  if (!m) throw new FormatError(`'${label}' is not a backup label`, { hint: "labels look like '20261124-153148F' or '20261124-153148F_20261125-010000I'" });
  const fullDate = backupLabelStampDate(m[1]!, label);
  if (!m[2]) return { full: label, type: 'full', time: m[1]!, date: fullDate };
  return { full: `${m[1]}F`, type: m[3] === 'D' ? 'diff' : 'incr', time: m[2], date: backupLabelStampDate(m[2], label) };
}

/**
 * The label of a new backup taken at `date`, moved forward a second at a time past the newest
 * existing label: labels must sort in the order the backups were taken, even when two backups
 * start within one second or the clock went back.
 */
export function backupLabelNext(existing: readonly string[], type: BackupType, priorFull: string | undefined, date: Date): string {
  let latest: Date | undefined;
  for (const label of existing) {
    const d = backupLabelParse(label).date;
    if (latest === undefined || d > latest) latest = d;
  }
  const seconds = Math.floor(date.getTime() / 1000) * 1000;
  const at = latest !== undefined && seconds <= latest.getTime() ? latest.getTime() + 1000 : seconds;
  return backupLabelNew(type, priorFull, new Date(at));
}
