import {
  BackupSetInvalidError, OptionInvalidError, errorWrap, OptionRequiredError, forEachLimit, log, manifestLoad,
} from '@openrds/common';
import type { Manifest, ManifestFile, ManifestTarget, RestoreFileSpec } from '@openrds/common';
import type { BackupInfo, BackupInfoEntry, Repo } from '../../repo/repo';
import { reposSelected } from '../../repo/repo-set';
import type { CommandContext, CommandOutput } from '../context';
import { fmtBytes } from '../backup/backup';
import { pgRelativeName } from '../backup/manifest-build';
import { withStanzaLock } from '../stanza-lock';
import { AGENT_WAIT_MS } from '../../server/agent-registry';

/** Files per restore job: a modest message (~1 MB), and few pauses between jobs. */
const JOB_FILES_MAX = 8000;
const TARGET_TYPES = new Set(['time', 'xid', 'lsn', 'name']);

/** Parses a recovery_target_time the way a DBA writes it ('2026-11-24 15:31:48.123+00'). */
export function targetTimeParse(text: string): number | undefined {
  let t = text.trim().replace(' ', 'T');
  t = t.replace(/([+-]\d{2})$/, '$1:00').replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The backup to restore: --set, or for a time target the newest that ended before it, else the newest. */
export function restoreSetSelect(info: BackupInfo, set: string | undefined, type: string, target: string | undefined): BackupInfoEntry {
  const backups = [...info.backups].sort((a, b) => (a.label < b.label ? -1 : 1));
  if (set) {
    const found = backups.find((b) => b.label === set);
    if (!found) {
      throw new BackupSetInvalidError(`backup set '${set}' is not valid`, { hint: `run 'openrds-admin info' for the list of backups` });
    }
    return found;
  }
  if (backups.length === 0) {
    throw new BackupSetInvalidError('the stanza has no backup to restore', { hint: "take one with 'openrds-admin backup'" });
  }
  if (type === 'time' && target) {
    const ms = targetTimeParse(target);
    if (ms !== undefined) {
      const before = backups.filter((b) => b.timestampStop <= ms);
      if (before.length > 0) return before[before.length - 1]!;
      log.warn(`no backup ended before target time '${target}': using the oldest backup`);
      return backups[0]!;
    }
    log.warn(`unable to parse target time '${target}' to pick a backup: using the latest`);
  }
  return backups[backups.length - 1]!;
}

/** recovery settings for the restore type and target (restore_command is added by the agent). */
export function recoverySettings(opts: { type: string; target?: string; targetAction: string; targetExclusive: boolean;
  targetTimeline?: string; pgVersion: number; extra: Record<string, string>; archiveMode?: string }): { settings: { key: string; value: string }[]; signal: string; restoreCommand: boolean } {
  const settings: { key: string; value: string }[] = [];
  if (opts.type === 'none' || opts.type === 'preserve') return { settings, signal: '', restoreCommand: false };
  if (TARGET_TYPES.has(opts.type)) {
    if (!opts.target) throw new OptionRequiredError(`restore --type=${opts.type} requires --target`, { hint: `e.g. --type=time --target='2026-11-24 15:31:48+00'` });
    settings.push({ key: `recovery_target_${opts.type}`, value: opts.target });
    if (opts.targetExclusive && opts.type !== 'name') settings.push({ key: 'recovery_target_inclusive', value: 'false' });
  } else if (opts.type === 'immediate') {
    settings.push({ key: 'recovery_target', value: 'immediate' });
  } else if (opts.target) {
    throw new OptionInvalidError(`option 'target' is not valid with restore --type=${opts.type}`, { hint: 'use --type=time|xid|lsn|name' });
  }
  const hasTarget = TARGET_TYPES.has(opts.type) || opts.type === 'immediate';
  if (hasTarget && opts.type !== 'standby') settings.push({ key: 'recovery_target_action', value: opts.targetAction });
  if (opts.targetTimeline) settings.push({ key: 'recovery_target_timeline', value: opts.targetTimeline });
  else if (opts.type === 'immediate' && opts.pgVersion >= 12) settings.push({ key: 'recovery_target_timeline', value: 'current' });
  // A copy restored for inspection must not archive a new timeline into the stanza.
  if (opts.archiveMode === 'off') settings.push({ key: 'archive_mode', value: 'off' });
  for (const [key, value] of Object.entries(opts.extra)) settings.push({ key, value });
  return { settings, signal: opts.type === 'standby' ? 'standby.signal' : 'recovery.signal', restoreCommand: true };
}

/**
 * Applies --tablespace-map (by tablespace name or oid) to the link targets of a manifest. Returns
 * the targets with their new paths, and the tablespace_map text to write when any moved.
 */
export function tablespaceRemap(manifest: Manifest, map: Record<string, string>): { targets: ManifestTarget[]; tablespaceMap?: string } {
  const links = manifest.targets.filter((t) => t.type === 'link');
  const used = new Set<string>();
  const targets = links.map((t) => {
    const key = [t.tablespaceName, String(t.tablespaceId)].find((k) => k !== undefined && map[k] !== undefined);
    if (!key) return t;
    used.add(key);
    return { ...t, path: map[key]! };
  });
  const unknown = Object.keys(map).filter((k) => !used.has(k));
  if (unknown.length > 0) {
    throw new OptionInvalidError(`tablespace '${unknown[0]}' of option 'tablespace-map' is not in backup set ${manifest.backup.label}`,
      { hint: `the backup has ${links.map((t) => `'${t.tablespaceName ?? t.tablespaceId}'`).join(', ') || 'no tablespaces'}` });
  }
  if (used.size === 0) return { targets };
  const lines = targets.filter((t) => t.tablespaceId !== undefined).map((t) => `${t.tablespaceId} ${t.path}\n`);
  return { targets, tablespaceMap: lines.join('') };
}

/**
 * `restore`: writes a backup into an empty directory on the agent's host (the stanza's pg1-path
 * or --pg1-path), every file checked against its manifest checksum, then the recovery settings,
 * and pg_control last. Refuses a running cluster and a non-empty directory.
 */
export async function restore(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.str('stanza');
  return withStanzaLock(stanza, 'restore', () => restoreRun(ctx, stanza), 'restore');
}

/**
 * The repository and backup set to restore: the one --repo names, or the first repository (in
 * order) that has a set matching --set / the target. A repository that cannot be read is passed
 * over with a warning.
 */
async function restoreRepoSelect(ctx: CommandContext, stanza: string, type: string, target: string | undefined):
  Promise<{ repo: Repo; info: BackupInfo; chosen: BackupInfoEntry }> {
  const targets = reposSelected(ctx.repos, ctx.config);
  let firstError: unknown;
  for (const { repo } of targets) {
    try {
      const info = await repo.backupInfoLoad(stanza);
      const chosen = restoreSetSelect(info, ctx.config.strOpt('set'), type, target);
      if (targets.length > 1) log.info(`restore from repo${repo.key}`);
      return { repo, info, chosen };
    } catch (err) {
      if (targets.length === 1) throw err;
      log.warn(`repo${repo.key}: ${errorWrap(err).message}`);
      firstError ??= err;
    }
  }
  throw firstError;
}

async function restoreRun(ctx: CommandContext, stanza: string): Promise<CommandOutput> {
  const { config } = ctx;
  const type = config.str('type');
  const target = config.strOpt('target');
  const { repo, info, chosen } = await restoreRepoSelect(ctx, stanza, type, target);
  const manifest: Manifest = await manifestLoad(repo.storage, repo.manifestKey(stanza, chosen.label));
  const recovery = recoverySettings({
    type, targetAction: config.str('target-action'), targetExclusive: config.bool('target-exclusive'),
    pgVersion: manifest.db.pgVersion, extra: config.hash('recovery-option'), archiveMode: config.str('archive-mode'),
    ...(target ? { target } : {}),
    ...(config.strOpt('target-timeline') ? { targetTimeline: config.str('target-timeline') } : {}),
  });
  const agent = await ctx.agents.waitForStanza(stanza, AGENT_WAIT_MS);
  const pgPath = config.strOpt('pg1-path') ?? agent.registration(stanza)!.pgPath;
  log.info(`restore backup set ${chosen.label} (PostgreSQL ${manifest.db.pgVersion}) to '${pgPath}'`);

  const compressType = manifest.options.compressType;
  const keyOf = (f: ManifestFile): string => repo.backupFileKey(stanza, f.reference ?? manifest.backup.label, f.name, compressType);
  const specOf = (f: ManifestFile): RestoreFileSpec => ({
    name: pgRelativeName(f.name), repoKey: keyOf(f), size: f.size, sha256: f.sha256, mtime: f.mtime, mode: f.mode,
    compressType,
  });
  const pgControl = manifest.files.find((f) => f.name === 'pg_data/global/pg_control');
  if (!pgControl) throw new BackupSetInvalidError(`backup set ${chosen.label} has no pg_control`, { hint: 'the manifest is damaged: run verify' });
  const { targets: linkTargets, tablespaceMap } = tablespaceRemap(manifest, config.hash('tablespace-map'));
  // A remapped tablespace_map is written by the agent: the one in the backup names the old paths.
  const files = manifest.files.filter((f) => f !== pgControl && !(tablespaceMap && f.name === 'pg_data/tablespace_map'))
    .sort((a, b) => b.size - a.size);
  const allowed = new Set(manifest.files.filter((f) => f.size > 0).map(keyOf));
  const processMax = config.int('process-max');
  const delta = config.bool('delta');
  // Encrypted repository: the keys of this backup and of those it references, for this job only.
  const labels = new Set([manifest.backup.label, ...manifest.files.map((f) => f.reference).filter((r): r is string => !!r)]);
  const keyIds = [manifest.backup.cipherKey, ...info.backups.filter((b) => labels.has(b.label)).map((b) => b.cipherKey)].filter((k): k is string => !!k);
  if (repo.cipher.enabled && keyIds.length === 0) throw new BackupSetInvalidError(`backup set ${chosen.label} names no encryption key`, { hint: 'the manifest is damaged: run verify' });
  const cipherKeys = await repo.cipher.keys(stanza, keyIds);
  let kept = 0;
  const started = Date.now();

  await ctx.transfers.withJob({ kind: 'restore', stanza, repo, allowed }, async (jobId) => {
    await agent.job(stanza, {
      restorePrepare: {
        pgPath,
        paths: manifest.paths.map((p) => ({ name: pgRelativeName(p.name), mode: p.mode })),
        links: [
          ...linkTargets.map((t) => ({ name: t.name, destination: t.path })),
          ...manifest.links.filter((l) => !linkTargets.some((t) => `pg_data/${t.name}` === l.name))
            .map((l) => ({ name: pgRelativeName(l.name), destination: l.destination })),
        ],
        delta, files: delta ? manifest.files.map((f) => pgRelativeName(f.name)) : [],
      },
    }, { signal: ctx.signal, jobId });
    const batches: ManifestFile[][] = [];
    for (let i = 0; i < files.length; i += JOB_FILES_MAX) batches.push(files.slice(i, i + JOB_FILES_MAX));
    let done = 0;
    await forEachLimit(batches, 1, async (batch) => {
      const r = await agent.job<{ kept: number; restored: number }>(stanza, {
        restoreFiles: { pgPath, processMax, files: batch.map(specOf), delta, force: config.bool('force'), cipherKeys },
      }, { signal: ctx.signal, jobId });
      done += batch.length;
      kept += r.kept ?? 0;
      log.detail(`restored ${done}/${files.length} files`);
    });
    if (delta) log.info(`delta restore: ${kept} file(s) already matched the backup, ${files.length - kept} restored`);
    await agent.job(stanza, {
      restoreFinish: {
        pgPath, recovery: recovery.settings, signalFile: recovery.signal, pgVersion: manifest.db.pgVersion,
        pgControl: specOf(pgControl), restoreCommandAuto: recovery.restoreCommand, stanza, tablespaceMap: tablespaceMap ?? '', cipherKeys,
        walStart: manifest.backup.walStart,
      },
    }, { signal: ctx.signal, jobId });
  });
  const size = manifest.files.reduce((n, f) => n + f.size, 0);
  const seconds = (Date.now() - started) / 1000;
  const text = `restore of backup set ${chosen.label} complete: ${manifest.files.length} files, ${fmtBytes(size)} in ${seconds.toFixed(1)}s to '${pgPath}'\n`;
  log.info(text.trim());
  return { text, json: { label: chosen.label, pgPath, files: manifest.files.length, size, recovery: recovery.settings } };
}
