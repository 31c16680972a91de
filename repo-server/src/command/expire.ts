import { reposSelected } from '../repo/repo-set';
import { BackupSetInvalidError, log } from '@openrds/common';
import type { BackupInfo, BackupInfoEntry } from '../repo/repo';
import type { CommandContext, CommandOutput } from './context';
import { withStanzaLock } from './stanza-lock';

export interface RetentionOptions {
  full?: number;
  fullType: 'count' | 'time';
  diff?: number;
  archive?: number;
  archiveType: 'full' | 'diff' | 'incr';
  /** Expire this backup (and what depends on it) instead of applying retention. */
  set?: string;
  nowMs: number;
}

export interface ExpirePlan {
  backups: string[];                       // labels, dependents included
  /** Per archive id: the oldest WAL segment to keep (older segments go). */
  archiveKeepFrom: Record<string, string>;
  warnings: string[];
}

const fullOf = (label: string): string => label.slice(0, 16);

/** A backup and every backup that depends on it (its diff/incr chain). */
function withDependents(backups: BackupInfoEntry[], label: string): string[] {
  const b = backups.find((x) => x.label === label)!;
  if (b.type === 'full') return backups.filter((x) => fullOf(x.label) === label).map((x) => x.label);
  const out = new Set([label]);
  for (const x of backups) if (x.prior && out.has(x.prior)) out.add(x.label);
  return [...out];
}

/**
 * What expire removes, decided from backup.info alone (pure, so it is easy to test): full backups
 * beyond repo1-retention-full with their dependents, differentials beyond repo1-retention-diff,
 * and WAL older than the oldest backup that archive retention keeps. The newest full backup is
 * never expired, and no WAL that a kept backup needs to be consistent.
 */
export function expirePlan(info: BackupInfo, opts: RetentionOptions): ExpirePlan {
  const backups = [...info.backups].sort((a, b) => (a.label < b.label ? -1 : 1));
  const fulls = backups.filter((b) => b.type === 'full');
  const expired = new Set<string>();
  const warnings: string[] = [];
  if (opts.set) {
    const target = backups.find((b) => b.label === opts.set);
    if (!target) throw new BackupSetInvalidError(`backup set '${opts.set}' does not exist`, { hint: "run 'openrds-admin info' for the list of backups" });
    if (target.type === 'full' && target.label === fulls[fulls.length - 1]?.label) {
      throw new BackupSetInvalidError(`backup set '${opts.set}' is the newest full backup and cannot be expired`,
        { hint: 'take another full backup first' });
    }
    for (const l of withDependents(backups, opts.set)) expired.add(l);
  } else {
    if (opts.full === undefined) {
      warnings.push('option repo1-retention-full is not set: backups are never expired and the repository grows without bound');
    } else if (opts.fullType === 'count') {
      for (const f of fulls.slice(0, Math.max(0, fulls.length - opts.full))) for (const l of withDependents(backups, f.label)) expired.add(l);
    } else {
      // Keep every full within the window, and the newest one before it, which the window's start needs.
      const cutoff = opts.nowMs - opts.full * 86_400_000;
      const older = fulls.filter((f) => f.timestampStop < cutoff);
      for (const f of older.slice(0, -1)) for (const l of withDependents(backups, f.label)) expired.add(l);
    }
    if (opts.diff !== undefined) {
      const diffs = backups.filter((b) => b.type === 'diff' && !expired.has(b.label));
      for (const d of diffs.slice(0, Math.max(0, diffs.length - opts.diff))) for (const l of withDependents(backups, d.label)) expired.add(l);
    }
  }
  const kept = backups.filter((b) => !expired.has(b.label));
  // WAL: keep from the start of the oldest backup archive retention counts, and never past the
  // oldest kept backup, so that every kept backup stays consistent (and restorable to later times).
  const archiveKeepFrom: Record<string, string> = {};
  const retentionArchive = opts.archive ?? (opts.archiveType === 'full' ? opts.full : undefined);
  let floor: BackupInfoEntry | undefined;
  if (opts.full !== undefined && opts.fullType === 'time') {
    floor = kept[0];
  } else if (retentionArchive !== undefined && kept.length > 0) {
    const counted = kept.filter((b) => opts.archiveType === 'incr' || b.type === 'full' || (opts.archiveType === 'diff' && b.type === 'diff'));
    floor = counted[Math.max(0, counted.length - retentionArchive)];
    if (floor && kept[0]!.label < floor.label) floor = kept[0];
  }
  if (floor) archiveKeepFrom[floor.archiveId] = floor.walStart;
  return { backups: [...expired].sort(), archiveKeepFrom, warnings };
}

/** Removes WAL files of an archive id that sort before `keepFrom` (history files are always kept). */
async function archiveExpire(ctx: CommandContext, stanza: string, archiveId: string, keepFrom: string, dryRun: boolean): Promise<number> {
  const storage = ctx.repo.storage;
  const base = ctx.repo.archiveIdPath(stanza, archiveId);
  let removed = 0;
  for (const dir of await storage.list(base, { expression: /^[0-9A-F]{16}$/ })) {
    const names = await storage.list(`${base}/${dir}`);
    const old = names.filter((n) => n.slice(0, 24) < keepFrom);
    if (old.length === 0) continue;
    removed += old.length;
    if (dryRun) continue;
    if (old.length === names.length) await storage.pathRemove(`${base}/${dir}`, { recurse: true });
    else for (const n of old) await storage.remove(`${base}/${dir}/${n}`);
  }
  return removed;
}

/** Applies retention (or --set) to a stanza; the caller holds the stanza lock. */
export async function expireRun(ctx: CommandContext, stanza: string): Promise<CommandOutput> {
  const { config, repo } = ctx;
  const dryRun = config.command === 'expire' && config.bool('dry-run');
  const info = await repo.backupInfoLoad(stanza);
  // Each repository has its own retention (repoN-retention-*).
  const r = `repo${repo.key}-retention`;
  const plan = expirePlan(info, {
    fullType: config.str(`${r}-full-type`) as 'count' | 'time',
    archiveType: config.str(`${r}-archive-type`) as 'full' | 'diff' | 'incr',
    nowMs: Date.now(),
    ...(config.strOpt(`${r}-full`) ? { full: config.int(`${r}-full`) } : {}),
    ...(config.strOpt(`${r}-diff`) ? { diff: config.int(`${r}-diff`) } : {}),
    ...(config.strOpt(`${r}-archive`) ? { archive: config.int(`${r}-archive`) } : {}),
    ...(config.command === 'expire' && config.strOpt('set') ? { set: config.str('set') } : {}),
  });
  for (const w of plan.warnings) log.warn(w);
  const prefix = dryRun ? '[dry-run] ' : '';
  if (plan.backups.length > 0) {
    log.info(`${prefix}expire backup set ${plan.backups.join(', ')}`);
    if (!dryRun) {
      // backup.info first: once it no longer lists them they are not backups, whatever remains on disk.
      info.backups = info.backups.filter((b) => !plan.backups.includes(b.label));
      await repo.backupInfoSave(stanza, info);
      for (const label of plan.backups) await repo.storage.pathRemove(repo.backupSetPath(stanza, label), { recurse: true });
    }
  }
  let walRemoved = 0;
  for (const [archiveId, keepFrom] of Object.entries(plan.archiveKeepFrom)) {
    const n = await archiveExpire(ctx, stanza, archiveId, keepFrom, dryRun);
    if (n > 0) log.info(`${prefix}remove archive ${archiveId}: ${n} file(s) before ${keepFrom}`);
    walRemoved += n;
  }
  const text = `${prefix}expired ${plan.backups.length} backup(s)${plan.backups.length ? ` (${plan.backups.join(', ')})` : ''} and ${walRemoved} WAL file(s)\n`;
  return { text, json: { dryRun, backups: plan.backups, walRemoved, archiveKeepFrom: plan.archiveKeepFrom } };
}

/** `expire`: retention on its own, or `--set=LABEL`; `--dry-run` changes nothing. */
export async function expire(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.str('stanza');
  const targets = reposSelected(ctx.repos, ctx.config);
  return withStanzaLock(stanza, 'expire', async () => {
    const outs: CommandOutput[] = [];
    for (const { repo, archive } of targets) {
      const one = { ...ctx, repo, archive };
      await repo.archiveInfoLoad(stanza);
      outs.push(await expireRun(one, stanza));
    }
    if (outs.length === 1) return outs[0]!;
    return {
      text: outs.map((o, i) => `repo${targets[i]!.repo.key}: ${o.text}`).join(''),
      json: outs.map((o, i) => ({ repo: targets[i]!.repo.key, ...(o.json as object) })),
    };
  });
}
