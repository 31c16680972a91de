import { manifestFileFind } from '@openrds/common';
import type { Manifest, ManifestFile } from '@openrds/common';
import type { BackupInfo, BackupInfoEntry } from '../../repo/repo';

export interface PriorChoice {
  type: 'full' | 'diff' | 'incr';
  prior?: BackupInfoEntry;
  /** Why the requested type was changed, for the log. */
  reason?: string;
}

/**
 * The backup a diff (the latest full) or incr (the latest backup) builds on; with no full of the
 * current database there is nothing to build on, and a full is taken instead.
 */
export function backupPriorSelect(info: BackupInfo, requested: 'full' | 'diff' | 'incr'): PriorChoice {
  if (requested === 'full') return { type: 'full' };
  const ours = info.backups.filter((b) => b.dbId === info.db.id).sort((a, b) => (a.label < b.label ? -1 : 1));
  const fulls = ours.filter((b) => b.type === 'full');
  const full = fulls[fulls.length - 1];
  if (!full) return { type: 'full', reason: `no prior backup exists, ${requested} backup has been changed to full` };
  if (requested === 'diff') return { type: 'diff', prior: full };
  return { type: 'incr', prior: ours[ours.length - 1]! };
}

/**
 * Reasons to stop trusting size + mtime and compare checksums instead (pgBackRest's rules): a
 * timestamp in the future (clock skew), a file older than before, the same timestamp with another
 * size, a timeline switch, a change of online mode, or --delta asked for.
 */
export function deltaReasons(prior: Manifest, files: ManifestFile[], opts: { copyStart: number; timeline: number; online: boolean; explicit: boolean }): string[] {
  const reasons: string[] = [];
  if (opts.explicit) reasons.push('--delta was given');
  if (prior.backup.timeline !== opts.timeline) reasons.push(`the timeline changed from ${prior.backup.timeline} to ${opts.timeline}`);
  if (prior.backup.online !== opts.online) reasons.push('the online mode changed');
  for (const f of files) {
    if (f.mtime > opts.copyStart) { reasons.push(`file '${f.name}' has a timestamp in the future`); break; }
    const p = manifestFileFind(prior, f.name);
    if (!p) continue;
    if (f.mtime < p.mtime) { reasons.push(`file '${f.name}' has an older timestamp than in the prior backup`); break; }
    if (f.mtime === p.mtime && f.size !== p.size) { reasons.push(`file '${f.name}' changed size with the same timestamp`); break; }
  }
  return reasons;
}

/** Where a file referenced from a prior backup is stored: its checksum and repo size there, and the backup holding it. */
export interface PriorCopy { sha256: string; repoSize: number; reference: string }

/** The prior copy of a file of `prior` (the backup that stored it: `prior` itself, or the one `prior` references). */
export function priorCopyOf(prior: Manifest, p: ManifestFile): PriorCopy {
  return { sha256: p.sha256, repoSize: p.repoSize, reference: p.reference ?? prior.backup.label };
}

/** Files never taken from a prior backup: PostgreSQL rewrites them in place without reliable mtimes. */
const ALWAYS_COPY = new Set(['pg_data/global/pg_control']);

/**
 * What an incremental does with each file: reference the prior copy (same size and mtime, or
 * same checksum in delta mode), checksum it first (delta mode, same size), or copy it.
 */
export function incrementalPlan(prior: Manifest, files: ManifestFile[], delta: boolean): {
  reference: Map<string, PriorCopy>; checksum: ManifestFile[]; copy: ManifestFile[];
} {
  const reference = new Map<string, PriorCopy>();
  const checksum: ManifestFile[] = [];
  const copy: ManifestFile[] = [];
  for (const f of files) {
    const p = manifestFileFind(prior, f.name);
    if (!p || ALWAYS_COPY.has(f.name) || p.size !== f.size || f.size === 0) copy.push(f);
    else if (delta) checksum.push(f);
    else if (p.mtime === f.mtime) reference.set(f.name, priorCopyOf(prior, p));
    else copy.push(f);
  }
  return { reference, checksum, copy };
}
