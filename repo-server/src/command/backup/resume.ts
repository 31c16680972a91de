import { AssertError, BACKUP_LABEL_RE, COMPRESS_TYPES, CanonicalJson, FormatError, checksumTypeOf, compressExtension, forEachLimit, infoFileLoad, infoFileSave, log } from '@openrds/common';
import type { CompressType, ManifestFile } from '@openrds/common';
import { contentDigest } from '../../repo/digest';
import type { BackupInfo, Repo } from '../../repo/repo';

/** The in-progress record of a backup, saved periodically while files are copied. */
export const PARTIAL_NAME = 'backup.partial';

export interface PartialFile { name: string; size: number; mtime: number; sha256: string; repoSize: number }

export interface BackupPartial {
  version: 1;
  label: string;
  type: 'full' | 'diff' | 'incr';
  prior?: string;
  systemId: string;
  pgVersion: number;
  compressType: CompressType;
  compressLevel: number;
  timestampStart: number;
  /** Files stored completely, with what they held when listed and when stored. */
  files: PartialFile[];
}

/** What the new backup would be: a partial one resumes only when it matches. */
export interface ResumeWanted {
  type: 'full' | 'diff' | 'incr';
  systemId: string;
  pgVersion: number;
  compressType: CompressType;
  /** false with --no-resume. */
  resume: boolean;
}

export function partialKey(repo: Repo, stanza: string, label: string): string {
  return `${repo.backupSetPath(stanza, label)}/${PARTIAL_NAME}`;
}

function partialCheck(doc: unknown, label: string): BackupPartial {
  const p = doc as BackupPartial;
  const ok = p !== null && typeof p === 'object' && p.version === 1 && p.label === label && ['full', 'diff', 'incr'].includes(p.type)
    && typeof p.systemId === 'string' && typeof p.pgVersion === 'number' && COMPRESS_TYPES.includes(p.compressType) && Array.isArray(p.files)
    && p.files.every((f) => typeof f.name === 'string' && Number.isSafeInteger(f.size) && typeof f.mtime === 'number'
      && typeof f.sha256 === 'string' && Number.isSafeInteger(f.repoSize));
  if (!ok) throw new FormatError(`'${label}/${PARTIAL_NAME}' is not a resumable backup record`);
  return p;
}

/**
 * Why a partial backup cannot be resumed by the backup that is starting, or undefined when it can
 * (pure, so that the rules are tested on their own). Only a full backup resumes: an interrupted
 * diff or incr is cheap to take again and its prior may have changed.
 */
export function resumeRefusal(partial: BackupPartial | undefined, want: ResumeWanted): string | undefined {
  if (!partial) return 'it has no resumable record (interrupted before the first save)';
  if (!want.resume) return 'resume is disabled (--no-resume)';
  if (partial.type !== 'full') return `an interrupted ${partial.type} backup is not resumed`;
  if (want.type !== 'full') return `the new backup is ${want.type}, the interrupted one full`;
  if (partial.systemId !== want.systemId || partial.pgVersion !== want.pgVersion) {
    return `it is of system-id ${partial.systemId}, PostgreSQL ${partial.pgVersion}, the cluster of system-id ${want.systemId}, PostgreSQL ${want.pgVersion}`;
  }
  if (partial.compressType !== want.compressType) return `compress-type changed from ${partial.compressType} to ${want.compressType}`;
  return undefined;
}

/**
 * Backup sets in the repo that backup.info does not list are interrupted backups. The newest is
 * resumed when it matches the new backup; every other one is removed, with the reason logged.
 */
export async function resumeFind(repo: Repo, stanza: string, info: BackupInfo, want: ResumeWanted): Promise<BackupPartial | undefined> {
  const listed = new Set(info.backups.map((b) => b.label));
  const leftovers = (await repo.storage.list(repo.backupPath(stanza))).filter((n) => BACKUP_LABEL_RE.test(n) && !listed.has(n)).sort();
  let resumed: BackupPartial | undefined;
  for (const label of leftovers.toReversed()) {
    let partial: BackupPartial | undefined;
    let reason: string | undefined;
    try {
      partial = partialCheck(await infoFileLoad<unknown>(repo.storage, partialKey(repo, stanza, label)), label);
    } catch (err) {
      if ((err as Error).name !== 'FileMissingError') reason = `its resumable record cannot be read: ${(err as Error).message}`;
    }
    reason ??= resumed ? 'a newer interrupted backup is resumed' : resumeRefusal(partial, want);
    if (reason === undefined) {
      resumed = partial;
      continue;
    }
    log.warn(`backup ${label} was interrupted and is removed: ${reason}`);
    await repo.storage.pathRemove(repo.backupSetPath(stanza, label), { recurse: true });
  }
  return resumed;
}

/**
 * Re-checks the files an interrupted backup stored against the new listing. A file is kept when
 * the cluster still has it with the size and mtime it had when it was copied, and its repo bytes
 * still decompress to the recorded size and sha256; anything else in the backup set is removed
 * with its reason. Returns the kept files by manifest name.
 */
export async function resumeCheck(repo: Repo, stanza: string, partial: BackupPartial, listing: ManifestFile[], concurrency: number):
  Promise<Map<string, PartialFile>> {
  const setPath = repo.backupSetPath(stanza, partial.label);
  const recorded = new Map(partial.files.map((f) => [f.name, f]));
  const listed = new Map(listing.map((f) => [f.name, f]));
  const ext = compressExtension[partial.compressType];
  const kept = new Map<string, PartialFile>();
  const candidates: { key: string; file: PartialFile }[] = [];
  const removals: { key: string; reason: string }[] = [];
  const own = new Set([PARTIAL_NAME, `${PARTIAL_NAME}.copy`]);
  if (!repo.storage.listRecursive) throw new Error(`storage '${repo.storage.type}' cannot list recursively`);
  for await (const entry of repo.storage.listRecursive(setPath)) {
    if (entry.type !== 'file' || own.has(entry.name)) continue;
    const key = `${setPath}/${entry.name}`;
    const name = ext && entry.name.endsWith(ext) ? entry.name.slice(0, -ext.length) : entry.name;
    const p = recorded.get(name);
    const l = listed.get(name);
    if (!p) removals.push({ key, reason: 'not in the resumable record' });
    else if (!l) removals.push({ key, reason: 'no longer in the cluster' });
    else if (l.size !== p.size || l.mtime !== p.mtime) {
      removals.push({ key, reason: `changed in the cluster (size ${p.size} -> ${l.size}, mtime ${p.mtime} -> ${l.mtime})` });
    } else candidates.push({ key, file: p });
  }
  const keys = await repo.cipher.lookup(stanza);
  await forEachLimit(candidates, concurrency, async ({ key, file }) => {
    let reason: string | undefined;
    try {
      const d = await contentDigest(repo.storage, key, partial.compressType, keys, checksumTypeOf(file.sha256));
      if (d.size !== file.size || d.sha256 !== file.sha256) reason = `repo content (size ${d.size}, checksum ${d.sha256}) is not what was stored (size ${file.size}, checksum ${file.sha256})`;
    } catch (err) {
      reason = `unreadable: ${(err as Error).message}`;
    }
    if (reason) removals.push({ key, reason });
    else kept.set(file.name, file);
  });
  for (const r of removals) {
    log.detail(`resumed backup file '${r.key.slice(setPath.length + 1)}' removed: ${r.reason}`);
    await repo.storage.remove(r.key);
  }
  log.info(`resume backup ${partial.label}: ${kept.size} file(s) kept after re-checking their checksums, ${removals.length} removed`);
  return kept;
}

/** A record is saved again only after this many times the duration of the last save. */
const SAVE_SPACING = 10;

/**
 * Saves the partial record of a running backup every `threshold` bytes copied (and when asked),
 * one save at a time; a failed save is logged and retried at the next threshold.
 */
export class PartialSaver {
  private sinceSave = 0;
  private saving: Promise<void> = Promise.resolve();
  private saved = false;
  private nextSaveAt = 0;
  private unsaved = 0;

  /** The files recorded, each serialized once (a save writes them all again). */
  private readonly files: CanonicalJson[];

  /** `partial`: the record without its files so far, which are `files`; `resumed`: the record is in the repo already (this backup resumes it). */
  constructor(private readonly repo: Repo, private readonly stanza: string, private readonly partial: Omit<BackupPartial, 'files'>,
    files: PartialFile[], private readonly threshold: number, resumed: boolean) {
    this.files = files.map((f) => new CanonicalJson(f));
    this.saved = resumed;
  }

  /** True once a record is in the repo: the backup set can then be resumed. */
  get hasSaved(): boolean { return this.saved; }

  /** Files recorded so far. */
  get fileCount(): number { return this.files.length + this.released; }

  /** Files whose texts were dropped by release(): they are in the saved record. */
  private released = 0;

  add(file: PartialFile): void {
    // The released texts are gone: a save now would record only the files added since.
    if (this.released > 0) throw new AssertError(`file '${file.name}' recorded after the resumable record was released`);
    this.files.push(new CanonicalJson(file));
    this.unsaved++;
    this.sinceSave += file.size;
    // Each save writes the whole record: with many files, saves are spaced so that writing them
    // stays a small part of the time (at least ten times as long apart as the last one took).
    if (this.sinceSave >= this.threshold && Date.now() >= this.nextSaveAt) void this.save();
  }

  save(): Promise<void> {
    // Released: the record in the repo is complete, and a save now would hold no files.
    if (this.released > 0) return this.saving;
    this.sinceSave = 0;
    this.unsaved = 0;
    this.nextSaveAt = Number.POSITIVE_INFINITY;
    const snapshot = { ...this.partial, files: [...this.files] };
    this.saving = this.saving.then(async () => {
      const started = Date.now();
      try {
        await infoFileSave(this.repo.storage, partialKey(this.repo, this.stanza, this.partial.label), snapshot);
        this.nextSaveAt = Date.now() + SAVE_SPACING * (Date.now() - started);
        this.saved = true;
      } catch (err) {
        this.nextSaveAt = 0;
        // What this save had is still to be saved (by the next threshold, or settle()).
        this.unsaved = Math.max(this.unsaved, 1);
        log.warn(`unable to save the resumable record of backup ${this.partial.label}: ${(err as Error).message}`);
      }
    });
    return this.saving;
  }

  /**
   * Drops the files' texts once the saved record holds them all (after the copy): they are tens
   * of MB for a cluster of many files, otherwise still alive while the manifest is built and
   * saved, the backup's peak. A record not saved completely keeps them for settle().
   */
  release(): void {
    if (this.unsaved > 0 || !this.saved) return;
    this.released += this.files.length;
    this.files.length = 0;
  }

  /** Waits for a save in flight, then removes the record (the backup completed). */
  async remove(): Promise<void> {
    await this.saving;
    const key = partialKey(this.repo, this.stanza, this.partial.label);
    await this.repo.storage.remove(key);
    await this.repo.storage.remove(`${key}.copy`);
  }

  /** Saves what was added since the last save (the backup stops: resume keeps all of it), and waits. */
  async settle(): Promise<void> {
    if (this.unsaved > 0) await this.save();
    await this.saving;
  }
}
