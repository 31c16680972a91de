import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AssertError, OptionInvalidError, ChecksumFilter, SizeFilter, backupLabelNext, checksumEmpty, checksumTypeOf, checksumTypeParse, compressFilters, encryptFilters,
  lsnParse, log, manifestFileFind, manifestLoad, manifestSave, memoryPhaseEnd, pgDataFilter, pgSql, sleep, walSegmentName, walSegmentRange,
} from '@openrds/common';
import type { ChecksumType, CipherDataKey, CompressType, FileEntry__Output as FileEntry, Manifest, ManifestFile, PgControlInfo__Output } from '@openrds/common';
import { archiveIdOf, stanzaDbCheck, type BackupInfoEntry } from '../../repo/repo';
import { archiveSwitch, archiveWait } from '../archive/archive-wait';
import type { CommandContext, CommandOutput } from '../context';
import { RemoteDb } from '../remote-db';
import { backupPriorSelect, deltaReasons, incrementalPlan, priorCopyOf, type PriorCopy } from './incremental';
import type { AgentConnection } from '../../server/agent-registry';
import { expireRun } from '../expire';
import { withStanzaLock } from '../stanza-lock';
import { fileEntryToPgData, manifestContentBuild, manifestName, pgRelativeName as pgName } from './manifest-build';
import { PartialSaver, resumeCheck, resumeFind, type BackupPartial, type PartialFile } from './resume';
import { AGENT_WAIT_MS } from '../../server/agent-registry';

/**
 * Files per backup job: a job's file list stays a modest message (~1 MB), and few jobs mean few
 * pauses where the lanes of one job drain before the next starts.
 */
const JOB_FILES_MAX = 8000;
const JOB_BYTES_MAX = 4 * 1024 * 1024 * 1024;

/**
 * `backup --type=full|diff|incr`: a non-exclusive online backup through the agent. One PostgreSQL session
 * is held from start to stop; the files are streamed by the agent (compressed and checksummed on
 * the database host) into the repo; backup_label and tablespace_map from the stop call are stored
 * as files; the backup counts (is added to backup.info) only once every WAL segment from start to
 * stop is in the archive. A failed backup is removed and never touches older ones.
 */
export async function backup(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.str('stanza');
  return withStanzaLock(stanza, 'backup', async () => {
    const out = await backupRun(ctx, stanza);
    if (!ctx.config.bool('expire-auto')) return out;
    const expired = await expireRun(ctx, stanza);
    return { text: out.text + expired.text, json: { ...(out.json as object), expire: expired.json } };
  });
}

async function backupRun(ctx: CommandContext, stanza: string): Promise<CommandOutput> {
  const { repo, config } = ctx;
  const archiveInfo = await repo.archiveInfoLoad(stanza);
  const backupInfo = await repo.backupInfoLoad(stanza);
  const agent = await ctx.agents.waitForStanza(stanza, AGENT_WAIT_MS);
  const registration = agent.registration(stanza)!;
  const control = await agent.job<PgControlInfo__Output>(stanza, { controlRead: {} });
  stanzaDbCheck(stanza, backupInfo.db, control, 'the cluster');
  const compressType = config.str('compress-type') as CompressType;
  const compressLevel = config.int('compress-level');
  const processMax = config.int('process-max');
  const checksumType = checksumTypeParse(config.str('checksum-type'));
  const sql = pgSql(control.pgVersion);
  const archiveId = archiveIdOf(archiveInfo.db);

  // diff and incr build on a prior backup of the same database and compression.
  let choice = backupPriorSelect(backupInfo, config.str('type') as 'full' | 'diff' | 'incr');
  let prior: Manifest | undefined;
  if (choice.prior) {
    const loaded = await manifestLoad(repo.storage, repo.manifestKey(stanza, choice.prior.label));
    if (loaded.options.compressType !== compressType) {
      choice = { type: 'full', reason: `compress-type changed from ${loaded.options.compressType} to ${compressType} since the prior backup: ${choice.type} backup has been changed to full` };
    } else {
      prior = loaded;
    }
  }
  if (choice.reason) log.warn(choice.reason);
  const type = choice.type;
  // Sets not in backup.info are interrupted backups: the newest full one may be resumed, the rest go.
  const resumed = await resumeFind(repo, stanza, backupInfo,
    { type, systemId: control.systemId, pgVersion: control.pgVersion, compressType, resume: config.bool('resume') });
  const existing = backupInfo.backups.map((b) => b.label);
  const label = resumed?.label ?? backupLabelNext(existing, type, choice.prior ? choice.prior.label.slice(0, 16) : undefined, new Date());
  const setPath = repo.backupSetPath(stanza, label);
  log.info(`backup start: ${type} ${label}${prior ? ` (prior ${prior.backup.label})` : ''}${resumed ? ` resuming the interrupted backup (${resumed.files.length} file(s) recorded)` : ''}, PostgreSQL ${control.pgVersion}, system-id ${control.systemId}`);
  // Encrypted repository: a diff/incr inherits its prior's key unless the keys were rotated since.
  const cipherKey = await repo.cipher.backupKey(stanza, label, prior?.backup.cipherKey);
  // A full backup keeps a record of the files it has stored, so that an interruption can be resumed.
  let saver: PartialSaver | undefined;

  const db = await RemoteDb.open(agent, stanza, 'openrds backup');
  let started = false;
  // The archive check runs beside the copy: its failure stops the copy; the backup's end stops it.
  let archiveChecked = Promise.resolve();
  const checkFailed = new AbortController(), checkDone = new AbortController();
  const copySignal = AbortSignal.any([ctx.signal, checkFailed.signal]);
  try {
    const settings = await db.one<{ archive_mode: string }>(sql.settings);
    if (settings.archive_mode === 'off') {
      throw new OptionInvalidError('archive_mode must be enabled for an online backup', { hint: 'set archive_mode = on and restart PostgreSQL' });
    }
    // Catch a broken archive_command early, not after the copy: the segment switched to here must
    // reach the archive while the copy runs, and the copy stops if it does not.
    if (config.bool('archive-check')) {
      const walFile = await archiveSwitch(db, sql);
      log.info(`WAL segment ${walFile} must reach the archive while the backup runs (archive check)`);
      archiveChecked = archiveWait({ ...ctx, signal: AbortSignal.any([ctx.signal, checkDone.signal]) }, stanza, archiveId, [walFile], config.num('archive-timeout') * 1000)
        .catch((err: unknown) => { if (!checkDone.signal.aborted) checkFailed.abort(err); throw err; });
      archiveChecked.catch(() => undefined);
    }
    const startFast = config.bool('start-fast');
    const timestampStart = (await agent.job<{ timeMs: number }>(stanza, { clock: {} })).timeMs;
    const start = await db.one<{ lsn: string; wal_file: string }>(sql.backupStart(label, startFast));
    started = true;
    log.info(`backup start archive = ${start.wal_file}, lsn = ${start.lsn}`);
    const timeline = parseInt(start.wal_file.slice(0, 8), 16);
    // The checkpoint the backup starts from must be in pg_control, on the same timeline.
    const after = await agent.job<PgControlInfo__Output>(stanza, { controlRead: {} });
    if (lsnParse(after.checkpointLsn) < lsnParse(start.lsn) || after.timeline !== timeline) {
      throw new AssertError(`pg_control checkpoint ${after.checkpointLsn} on timeline ${after.timeline} is before backup start ${start.lsn} on timeline ${timeline}`,
        { hint: 'is the agent reading the PGDATA of the cluster it connects to (pg1-path, pg1-port, pg1-socket-path)?' });
    }
    const databases = (await db.query<{ name: string; oid: number | string }>(sql.databaseList)).map((d) => ({ name: d.name, oid: Number(d.oid) }));

    // Tablespace names for the manifest; the listing follows pg_tblspc links.
    const tablespaces = new Map<number, string>();
    for (const t of await db.query<{ oid: number | string; name: string }>(sql.tablespaceList)) tablespaces.set(Number(t.oid), t.name);
    const entries: FileEntry[] = [];
    await agent.job(stanza, { list: { followTablespaces: true } }, {
      onEvent: (ev) => { if (ev.listPage) entries.push(...ev.listPage.entries); },
      signal: ctx.signal,
    });
    const rootMode = 0o700;
    const filtered = pgDataFilter(entries.map(fileEntryToPgData), { pgVersion: control.pgVersion, online: true, exclude: config.list('exclude') });
    for (const x of filtered.excluded) log.debug(`exclude '${x.name}': ${x.reason}`);
    const content = manifestContentBuild(registration.pgPath, rootMode, filtered.kept, tablespaces);
    // The listing is not needed past here: 80,000 files of it are tens of MB of heap (this
    // function's frame keeps its variables alive until the backup ends).
    entries.length = 0;
    filtered.kept.length = 0;
    memoryPhaseEnd();

    // Copy starts once the DB host's clock has passed the second of the listing: a file changed
    // after the listing then always has a later mtime than the one recorded (size + mtime are
    // safe to compare next time).
    const timestampCopyStart = await clockNextSecond(ctx, agent, stanza);
    const copyStart = Math.floor(timestampCopyStart / 1000);
    const referenced = new Map<string, PriorCopy>();
    let toCopy = content.files;
    let deltaMode = false;
    if (prior) {
      const reasons = deltaReasons(prior, content.files, { copyStart, timeline, online: true, explicit: config.bool('delta') });
      deltaMode = reasons.length > 0;
      for (const r of reasons) log.warn(`${r}: enabling delta checksum comparison`);
      const plan = incrementalPlan(prior, content.files, reasons.length > 0);
      for (const [name, f] of plan.reference) referenced.set(name, f);
      toCopy = plan.copy;
      if (plan.checksum.length > 0) {
        // Each file is hashed with the type of the checksum it is compared with (a prior may hold both).
        const sums = new Map<string, string>();
        const byType = new Map<ChecksumType, ManifestFile[]>();
        for (const f of plan.checksum) {
          const t = checksumTypeOf(manifestFileFind(prior, f.name)!.sha256);
          const list = byType.get(t);
          if (list) list.push(f); else byType.set(t, [f]);
        }
        for (const [t, list] of byType) {
          await agent.job(stanza, { checksumFiles: { checksumType: t, files: list.map((f) => ({ name: pgName(f.name), size: f.size, checksumPage: false })) } }, {
            onEvent: (ev) => { if (ev.fileDone && !ev.fileDone.missing) sums.set(ev.fileDone.name, ev.fileDone.sha256); },
            signal: ctx.signal,
          });
        }
        for (const f of plan.checksum) {
          const p = manifestFileFind(prior, f.name)!;
          if (sums.get(pgName(f.name)) === p.sha256) referenced.set(f.name, priorCopyOf(prior, p));
          else toCopy.push(f);
        }
      }
      log.info(`${type} backup: ${referenced.size} file(s) unchanged since ${prior.backup.label}, ${toCopy.length} to copy`);
    }

    // What is stored completes the listing's record of the file in place (size, checksum, repo
    // size): the record is the manifest's; a file without a checksum was not stored.
    const listed = new Map(content.files.map((f) => [f.name, f]));
    const storedAs = (name: string, stored: { size: number; sha256: string; repoSize: number }): void => {
      const f = listed.get(name);
      if (!f) throw new AssertError(`file '${name}' was stored but not listed`);
      f.size = stored.size; f.sha256 = stored.sha256; f.repoSize = stored.repoSize;
    };
    /** Files the database removed after the listing (the agent found them gone). */
    const missing = new Set<string>();
    if (type === 'full') {
      const partial: Omit<BackupPartial, 'files'> = {
        version: 1, label, type, systemId: control.systemId, pgVersion: control.pgVersion, compressType, compressLevel, timestampStart,
      };
      const keptFiles: PartialFile[] = [];
      if (resumed) {
        const kept = await resumeCheck(repo, stanza, resumed, content.files, Math.max(2, processMax));
        for (const f of kept.values()) {
          storedAs(f.name, f);
          keptFiles.push(f);
        }
        toCopy = toCopy.filter((f) => !kept.has(f.name));
      }
      const totalSize = content.files.reduce((n, f) => n + f.size, 0);
      saver = new PartialSaver(repo, stanza, partial, keptFiles, Math.max(config.int('manifest-save-threshold'), Math.floor(totalSize / 100)), !!resumed);
      if (resumed) await saver.save();
    }

    // Empty files are recorded, not stored: restore creates them empty, and WAL replay brings
    // whatever was written to them after the listing (as for every file of an online backup).
    for (const f of toCopy.filter((x) => x.size === 0)) storedAs(f.name, { size: 0, sha256: checksumEmpty(checksumType), repoSize: 0 });
    toCopy = toCopy.filter((f) => f.size > 0);

    // Copy: largest files first so that the tail of the backup stays short.
    const order = [...toCopy].sort((a, b) => b.size - a.size);
    const batches: ManifestFile[][] = [];
    let batch: ManifestFile[] = [], batchBytes = 0;
    for (const f of order) {
      if (batch.length >= JOB_FILES_MAX || (batchBytes + f.size > JOB_BYTES_MAX && batch.length > 0)) {
        batches.push(batch); batch = []; batchBytes = 0;
      }
      batch.push(f); batchBytes += f.size;
    }
    if (batch.length > 0) batches.push(batch);
    let copied = 0;
    const totalBytes = order.reduce((n, f) => n + f.size, 0);
    for (const files of batches) {
      const names = new Set(files.map((f) => pgName(f.name)));
      await ctx.transfers.withJob({
        kind: 'backup', stanza, repo, checksumType,
        keyFor: (name) => (names.has(name) ? repo.backupFileKey(stanza, label, manifestName(name), compressType) : undefined),
        onStored: (name, result) => {
          const f = listed.get(manifestName(name));
          if (!f) return;
          if (result.missing) { missing.add(f.name); return; }
          storedAs(f.name, result);
          saver?.add({ name: f.name, size: result.size, mtime: f.mtime, sha256: result.sha256, repoSize: result.repoSize });
        },
      }, (jobId) => agent.job(stanza, {
        backupFiles: {
          label, compressType, compressLevel, pageSize: control.pageSize, processMax, checksumType, ...(cipherKey ? { cipher: cipherKey } : {}),
          files: files.map((f) => ({ name: pgName(f.name), size: f.size, checksumPage: false })),
        },
      }, { signal: copySignal, jobId })).catch((err: unknown) => { throw checkFailed.signal.aborted ? checkFailed.signal.reason : err; });
      copied += files.length;
      await saver?.save();
      log.detail(`backup copied ${copied}/${order.length} files`);
    }

    // The copy's garbage goes before the manifest is built and saved (the backup's peak otherwise).
    saver?.release();
    memoryPhaseEnd();
    await archiveChecked;
    const stop = await db.one<{ lsn: string; label_file: string; spcmap_file: string | null }>(sql.backupStop);
    started = false;
    const timestampStop = (await agent.job<{ timeMs: number }>(stanza, { clock: {} })).timeMs;
    const walStop = walSegmentName(timeline, lsnParse(stop.lsn), control.walSegmentSize);
    log.info(`backup stop archive = ${walStop}, lsn = ${stop.lsn}`);

    // backup_label and tablespace_map from the stop call are files of the backup.
    const extra: ManifestFile[] = [];
    const stopSeconds = Math.floor(timestampStop / 1000);
    extra.push(await textFileStore(ctx, stanza, label, 'pg_data/backup_label', stop.label_file, stopSeconds, compressType, compressLevel, cipherKey, checksumType));
    if (stop.spcmap_file) extra.push(await textFileStore(ctx, stanza, label, 'pg_data/tablespace_map', stop.spcmap_file, stopSeconds, compressType, compressLevel, cipherKey, checksumType));

    // The listing's records become the manifest's, completed in place (a copy of each would be
    // tens of MB more for a cluster of many files, all alive at once).
    const files: ManifestFile[] = [];
    for (const f of content.files) {
      const ref = referenced.get(f.name);
      if (ref) {
        f.sha256 = ref.sha256; f.repoSize = ref.repoSize; f.reference = ref.reference;
        files.push(f);
        continue;
      }
      if (missing.has(f.name)) { log.detail(`skip file removed by the database: '${f.name}'`); continue; }
      if (!f.sha256) throw new AssertError(`file '${f.name}' was not copied`);
      files.push(f);
    }
    files.push(...extra);
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

    // The backup is consistent only with every WAL segment from start to stop.
    const segments = walSegmentRange(timeline, lsnParse(start.lsn), lsnParse(stop.lsn), control.walSegmentSize);
    if (config.bool('archive-check')) {
      log.info(`check archive for segment(s) ${segments[0]}:${segments[segments.length - 1]}`);
      await archiveWait(ctx, stanza, archiveId, segments, config.num('archive-timeout') * 1000);
    }

    const size = files.reduce((n, f) => n + f.size, 0);
    const repoSize = files.reduce((n, f) => n + f.repoSize, 0);
    const own = files.filter((f) => !f.reference);
    const delta = own.reduce((n, f) => n + f.size, 0);
    const repoDelta = own.reduce((n, f) => n + f.repoSize, 0);
    const references = [...new Set(files.map((f) => f.reference).filter((r): r is string => !!r))].sort();
    const manifest: Manifest = {
      version: 1,
      backup: {
        label, type, ...(prior ? { prior: prior.backup.label } : {}), timestampStart, timestampCopyStart, timestampStop, delta: deltaMode,
        lsnStart: start.lsn, lsnStop: stop.lsn, walStart: start.wal_file, walStop, timeline, online: true, archiveId,
        backupSize: size, repoSize, ...(cipherKey ? { cipherKey: cipherKey.id } : {}),
      },
      db: {
        id: backupInfo.db.id, systemId: control.systemId, pgVersion: control.pgVersion, catalogVersion: control.catalogVersion,
        controlVersion: control.controlVersion, walSegmentSize: control.walSegmentSize, pageSize: control.pageSize,
        checksumVersion: control.checksumVersion,
      },
      options: { compressType, compressLevel, processMax, checksumPage: false, checksumType },
      databases,
      targets: content.targets, paths: content.paths, links: content.links, files,
    };
    // Files were stored without a directory fsync each: their names become durable here, before
    // the manifest that lists them.
    await repo.storage.pathSync?.(setPath);
    await manifestSave(repo.storage, repo.manifestKey(stanza, label), manifest);
    const entry: BackupInfoEntry = {
      label, type, ...(prior ? { prior: prior.backup.label } : {}), ...(references.length ? { reference: references } : {}),
      timestampStart, timestampStop, lsnStart: start.lsn, lsnStop: stop.lsn,
      walStart: start.wal_file, walStop, archiveId, dbId: backupInfo.db.id, size, delta, repoSize, repoDelta,
      fileCount: files.length, online: true, ...(cipherKey ? { cipherKey: cipherKey.id } : {}),
    };
    const latest = await repo.backupInfoLoad(stanza);
    latest.backups.push(entry);
    latest.backups.sort((a, b) => (a.label < b.label ? -1 : 1));
    await repo.backupInfoSave(stanza, latest);
    await saver?.remove();
    const seconds = ((timestampStop - timestampStart) / 1000).toFixed(1);
    const text = `${type} backup ${label} complete: ${files.length} files, ${fmtBytes(size)}, copied ${own.length} files ${fmtBytes(delta)} (${fmtBytes(repoDelta)} in the repo), ${seconds}s (${fmtBytes(totalBytes / Math.max(0.001, Number(seconds)))}/s)\n`;
    log.info(text.trim());
    return { text, json: entry };
  } catch (err) {
    log.error(`backup ${label} failed: ${(err as Error).message}`);
    if (started) await db.query(sql.backupStop).catch(() => undefined);
    await saver?.settle();
    if (saver?.hasSaved) {
      log.warn(`backup ${label} is kept to be resumed by the next full backup (${saver.fileCount} file(s) stored; --no-resume starts over)`);
    } else {
      await repo.storage.pathRemove(setPath, { recurse: true }).catch((e: Error) => log.warn(`unable to remove failed backup '${setPath}': ${e.message}`));
    }
    throw err;
  } finally {
    checkDone.abort();
    await db.close();
  }
}

/** Waits until the DB host's clock is past the current second; returns that time (ms). */
async function clockNextSecond(ctx: CommandContext, agent: AgentConnection, stanza: string): Promise<number> {
  const first = (await agent.job<{ timeMs: number }>(stanza, { clock: {} })).timeMs;
  const target = (Math.floor(first / 1000) + 1) * 1000;
  for (let i = 0; i < 3; i++) {
    const now = (await agent.job<{ timeMs: number }>(stanza, { clock: {} })).timeMs;
    if (now >= target) return now;
    await sleep(target - now + 5, ctx.signal);
  }
  throw new AssertError(`the clock of the database host did not pass ${new Date(target).toISOString()}`, { hint: 'is the clock of the database host stepping back?' });
}

/** Stores a small text file (backup_label, tablespace_map) as a file of the backup. */
async function textFileStore(ctx: CommandContext, stanza: string, label: string, name: string, text: string, mtime: number,
  compressType: CompressType, compressLevel: number, cipherKey: CipherDataKey | undefined, checksumType: ChecksumType): Promise<ManifestFile> {
  const data = Buffer.from(text, 'utf8');
  const sha = new ChecksumFilter(checksumType), size = new SizeFilter(), repoSize = new SizeFilter();
  await pipeline([Readable.from([data]), sha.stream, size.stream, ...[...compressFilters(compressType, compressLevel), ...encryptFilters(cipherKey)].map((f) => f.stream),
    repoSize.stream, ctx.repo.storage.newWrite(ctx.repo.backupFileKey(stanza, label, name, compressType))]);
  return { name, size: size.result(), sha256: sha.result(), repoSize: repoSize.result(), mtime, mode: 0o600 };
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)}${units[i]}`;
}
