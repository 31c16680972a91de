import { FormatError } from '../error';

export const BACKUP_LABEL_RE = /^(\d{8}-\d{6})F(?:_(\d{8}-\d{6})([DI]))?$/;

function stamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** A backup label as pgBackRest writes them: full 'YYYYMMDD-HHMMSSF', diff/incr '<full>_YYYYMMDD-HHMMSSD|I' (UTC). */
export function backupLabelNew(type: 'full' | 'diff' | 'incr', priorFull: string | undefined, date: Date): string {
  if (type === 'full') return `${stamp(date)}F`;
  if (!priorFull || !BACKUP_LABEL_RE.test(priorFull)) throw new FormatError(`a ${type} backup needs the label of its full backup`);
  return `${priorFull.slice(0, 16)}_${stamp(date)}${type === 'diff' ? 'D' : 'I'}`;
}

/** The parts of a label; throws FormatError for anything else. */
export function backupLabelParse(label: string): { full: string; type: 'full' | 'diff' | 'incr'; time: string } {
  const m = BACKUP_LABEL_RE.exec(label);
  if (!m) throw new FormatError(`'${label}' is not a backup label`);
  if (!m[2]) return { full: label, type: 'full', time: m[1]! };
  return { full: `${m[1]}F`, type: m[3] === 'D' ? 'diff' : 'incr', time: m[2] };
}

/** A new label strictly after every existing one (moving the time forward a second at a time). */
export function backupLabelNext(existing: string[], type: 'full' | 'diff' | 'incr', priorFull: string | undefined, date: Date): string {
  const timeOf = (l: string): string => backupLabelParse(l).time;
  const latest = existing.map(timeOf).sort().pop();
  let d = date;
  let label = backupLabelNew(type, priorFull, d);
  if (latest === undefined) return label;
  while (timeOf(label) <= latest) {
    d = new Date(d.getTime() + 1000);
    label = backupLabelNew(type, priorFull, d);
  }
  return label;
}
