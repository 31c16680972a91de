import { CipherMetaStorage, RepoCipher } from './cipher';
import {
  DbMismatchError, FileMissingError, StanzaMissingError, compressExtension, infoFileLoad, infoFileSave,
} from '@openrds/common';
import type { CompressType, PgControlInfo__Output, Storage } from '@openrds/common';

/** One database of a stanza's history (a new one after each pg_upgrade). */
export interface DbHistoryEntry {
  id: number;
  systemId: string;
  pgVersion: number;
  catalogVersion: number;
  controlVersion: number;
}

export interface ArchiveInfo {
  version: 1;
  db: DbHistoryEntry;
  history: DbHistoryEntry[];
}

/** One backup in backup.info: what `info` shows without opening manifests. */
export interface BackupInfoEntry {
  label: string;
  type: 'full' | 'diff' | 'incr';
  prior?: string;
  reference?: string[];
  timestampStart: number;
  timestampStop: number;
  lsnStart: string;
  lsnStop: string;
  walStart: string;
  walStop: string;
  archiveId: string;
  dbId: number;
  size: number;
  delta: number;
  repoSize: number;
  repoDelta: number;
  fileCount: number;
  online: boolean;
  /** Encrypted repository: the data key of the files this backup stored. */
  cipherKey?: string;
}

export interface BackupInfo {
  version: 1;
  db: DbHistoryEntry;
  history: DbHistoryEntry[];
  backups: BackupInfoEntry[];
}

/** archive id of a db history entry, as in the repository layout: '<pgmajor>-<id>'. */
export function archiveIdOf(db: DbHistoryEntry): string {
  return `${db.pgVersion}-${db.id}`;
}

/** How long archiveInfoRecent keeps archive.info (another process that changes it is seen within this). */
const ARCHIVE_INFO_KEEP_MS = 10_000;
/** How long past that the kept archive.info still serves while it is read again. */
const ARCHIVE_INFO_STALE_MS = 60_000;

/**
 * The repository of one repo-server: its layout (one place for every key) and the stanza info
 * files. Keys follow ARCHITECTURE.md's layout so that object stores use the same names.
 */
export class Repo {
  private readonly archiveInfoKept = new Map<string, { info: ArchiveInfo; at: number }>();
  /** archive.info reads under way (one per stanza). */
  private readonly archiveInfoLoading = new Map<string, Promise<ArchiveInfo>>();
  /** The repository's storage, with info files and manifests encrypted when the repository is. */
  readonly storage: Storage;
  readonly cipher: RepoCipher;

  /** Its number: repo1, repo2, ... */
  get key(): number { return this.cipher.repoKey; }

  constructor(readonly rawStorage: Storage, cipher?: RepoCipher) {
    const storage = rawStorage;
    this.cipher = cipher ?? new RepoCipher(storage, 'none', undefined);
    this.storage = new CipherMetaStorage(storage, this.cipher);
  }

  archivePath(stanza: string): string { return `archive/${stanza}`; }
  archiveInfoKey(stanza: string): string { return `archive/${stanza}/archive.info`; }
  archiveIdPath(stanza: string, archiveId: string): string { return `archive/${stanza}/${archiveId}`; }
  /** Directory of a WAL segment (or .partial/.backup file): the first 16 hex characters. */
  walDir(stanza: string, archiveId: string, walName: string): string {
    return `archive/${stanza}/${archiveId}/${walName.slice(0, 16)}`;
  }
  backupPath(stanza: string): string { return `backup/${stanza}`; }
  backupInfoKey(stanza: string): string { return `backup/${stanza}/backup.info`; }
  backupSetPath(stanza: string, label: string): string { return `backup/${stanza}/${label}`; }
  manifestKey(stanza: string, label: string): string { return `backup/${stanza}/${label}/backup.manifest`; }
  /** Repo key of a backup file by its manifest name ('pg_data/...' or 'pg_tblspc/<oid>/...'). */
  backupFileKey(stanza: string, label: string, manifestName: string, compressType: CompressType): string {
    return `backup/${stanza}/${label}/${manifestName}${compressExtension[compressType]}`;
  }

  async stanzaExists(stanza: string): Promise<boolean> {
    return (await this.storage.exists(this.archiveInfoKey(stanza))) || (await this.storage.exists(`${this.archiveInfoKey(stanza)}.copy`));
  }

  async archiveInfoLoad(stanza: string): Promise<ArchiveInfo> {
    try {
      return await infoFileLoad<ArchiveInfo>(this.storage, this.archiveInfoKey(stanza));
    } catch (err) {
      if (err instanceof FileMissingError) throw stanzaMissing(stanza);
      throw err;
    }
  }

  async backupInfoLoad(stanza: string): Promise<BackupInfo> {
    try {
      return await infoFileLoad<BackupInfo>(this.storage, this.backupInfoKey(stanza));
    } catch (err) {
      if (err instanceof FileMissingError) throw stanzaMissing(stanza);
      throw err;
    }
  }

  /**
   * archive.info for the WAL path (each push and each staged segment checks its header against
   * it): kept for ARCHIVE_INFO_KEEP_MS, so that a push under load does not read, check and parse
   * the file each time (1-25 ms measured, 3-4 trips through libuv's threads). It changes only
   * through archiveInfoSave (stanza-create, stanza-upgrade, key rotation), which drops it here.
   */
  async archiveInfoRecent(stanza: string): Promise<ArchiveInfo> {
    const kept = this.archiveInfoKept.get(stanza);
    if (kept && Date.now() - kept.at < ARCHIVE_INFO_KEEP_MS) return kept.info;
    // Older than that: read again, in the background while the kept one serves (a read under load
    // took 48 ms, on the path of the push that found it old); a minute past it, this call waits.
    const reload = (): Promise<ArchiveInfo> => {
      let p = this.archiveInfoLoading.get(stanza);
      if (!p) {
        p = this.archiveInfoLoad(stanza).then((info) => {
          // Not when a save dropped the kept info meanwhile (its read may predate the save).
          if (this.archiveInfoLoading.get(stanza) === p) this.archiveInfoKept.set(stanza, { info, at: Date.now() });
          return info;
        }).finally(() => { if (this.archiveInfoLoading.get(stanza) === p) this.archiveInfoLoading.delete(stanza); });
        this.archiveInfoLoading.set(stanza, p);
      }
      return p;
    };
    if (kept && Date.now() - kept.at < ARCHIVE_INFO_KEEP_MS + ARCHIVE_INFO_STALE_MS) {
      reload().catch(() => undefined);
      return kept.info;
    }
    return reload();
  }

  async archiveInfoSave(stanza: string, info: ArchiveInfo): Promise<void> {
    try {
      await infoFileSave(this.storage, this.archiveInfoKey(stanza), info);
    } finally {
      // After the save (a load while it ran may have kept the old file), whether or not it succeeded.
      this.archiveInfoKept.delete(stanza);
      this.archiveInfoLoading.delete(stanza);
    }
  }

  async backupInfoSave(stanza: string, info: BackupInfo): Promise<void> {
    await infoFileSave(this.storage, this.backupInfoKey(stanza), info);
  }

  /** Stanzas in the repo (those with an archive.info). */
  async stanzaList(): Promise<string[]> {
    return this.storage.list('archive');
  }
}

function stanzaMissing(stanza: string): StanzaMissingError {
  return new StanzaMissingError(`stanza '${stanza}' does not exist in the repo`,
    { hint: `run 'openrds-admin stanza-create --stanza=${stanza}' first, or check the stanza name` });
}

/**
 * Refuses a cluster whose pg_control (or WAL header) does not match the stanza's current db:
 * archiving or backing up another cluster into this stanza would mix two histories.
 */
export function stanzaDbCheck(stanza: string, db: DbHistoryEntry, found: { systemId: string; pgVersion: number }, what: string): void {
  if (found.systemId !== db.systemId || found.pgVersion !== db.pgVersion) {
    throw new DbMismatchError(
      `${what} is PostgreSQL ${found.pgVersion} with system-id ${found.systemId}, but stanza '${stanza}' is PostgreSQL ${db.pgVersion} with system-id ${db.systemId}`,
      { hint: 'is this the correct stanza? (after pg_upgrade, run stanza-upgrade)' });
  }
}

/** The db history entry described by a cluster's pg_control. */
export function dbEntryFromControl(id: number, c: PgControlInfo__Output): DbHistoryEntry {
  return { id, systemId: c.systemId, pgVersion: c.pgVersion, catalogVersion: c.catalogVersion, controlVersion: c.controlVersion };
}
