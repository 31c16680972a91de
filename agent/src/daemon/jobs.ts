import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { Client as PgClient } from 'pg';
import {
  AccessDeniedError, AssertError, CHUNK_SIZE, Config, FilterPool, ProtocolError, DbQueryError, FileExistsError, FileWriteError, PathNotEmptyError, PgRunningError,
  forEachLimit, grpcChunkReader, GrpcChunkLane, grpcClientStream, grpcMessages, log, pgControlRead,
  pgSql, cipherKeyLookup, SHA256_EMPTY, checksumIsEmpty, checksumTypeParse, errorToDetail,
} from '@openrds/common';
import type {
  AgentGatewayClient, DataChunk__Output, FileEntry, GetFilesMessage__Output, Job__Output, JobEvent, PutFileMessage, PutFileResult__Output,
  RestoreFileSpec__Output, CompressType, CipherKey__Output, CipherKeyLookup,
} from '@openrds/common';
import { SMALL_FILE_MAX, backupFile, backupFilesSmall } from '../command/backup/file';
import { restoreFile, restoreFilesSmall, type RestoreFileOptions } from '../command/restore/file';
import { pgDataList } from './list';
import { fsyncDir, recoveryWrite, writeFileDurable } from './recovery';
import { pgConnect } from './pg-connect';
import { agentRestoreCommand, commandLengthWarning } from './self';

const LIST_PAGE_SIZE = 2000;

/**
 * Whether a restore's recovery replays to the end of the archive and promotes (recovery.signal,
 * no recovery target): it then asks again for its last segment at the end.
 */
function recoversToEnd(signalFile: string, settings: { key: string }[]): boolean {
  const targetKeys = settings.filter((s) => s.key.startsWith('recovery_target') && s.key !== 'recovery_target_timeline' && s.key !== 'recovery_target_action');
  return signalFile === 'recovery.signal' && targetKeys.length === 0;
}

export type JobEmit = (event: Omit<JobEvent, 'jobId'>) => Promise<void>;

/** What a job needs from the daemon: where the cluster is and how to reach the repo-server. */
export interface JobContext {
  config: Config;
  stanza: string;
  pgPath: string;
  pgVersion: number;
  client: AgentGatewayClient;
  /** Running as root for restores only (restore-as-root): restored files go to this owner. */
  restoreOwner?: { uid: number; gid: number };
  /** The daemon's worker threads, shared with WAL pushes (one per core at most). */
  pool?: FilterPool;
  /** archive-async: starts fetching WAL ahead from this segment (recovery of a restore will begin there). */
  walPrefetch?: (walName: string, opts: { toEnd: boolean }) => void;
}

/**
 * Runs the jobs the repo-server sends on the session. PostgreSQL sessions opened by DbOpen live
 * until DbClose or until `closeAll` (the session stream ended): a non-exclusive backup belongs to
 * its PostgreSQL session, so losing the repo-server must abort it.
 */
export class JobRunner {
  private readonly dbSessions = new Map<string, PgClient>();

  /** File reads, writes, zstd and sha256 run on worker threads, one per core at most. */
  private readonly pool: FilterPool;

  constructor(private readonly ctx: JobContext) {
    this.pool = ctx.pool ?? new FilterPool();
  }

  /** Runs one job; the result (done or error) is emitted, never thrown. */
  async run(job: Job__Output, emit: JobEmit, signal: AbortSignal): Promise<void> {
    try {
      const result = await this.dispatch(job, emit, signal);
      await emit({ done: { resultJson: JSON.stringify(result ?? {}) } });
    } catch (err) {
      log.warn(`job ${job.kind} '${job.jobId}' failed: ${(err as Error).message}`);
      // Its class, exit code, message and hint, secrets redacted (as an error answered on a call).
      await emit({ error: errorToDetail(err) }).catch(() => undefined);
    }
  }

  async closeAll(): Promise<void> {
    const clients = [...this.dbSessions.values()];
    this.dbSessions.clear();
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }

  private async dispatch(job: Job__Output, emit: JobEmit, signal: AbortSignal): Promise<unknown> {
    if (this.ctx.restoreOwner && !RESTORE_JOBS.has(job.kind ?? '')) {
      throw new AccessDeniedError(`the agent runs as root for restores only (restore-as-root): it refuses ${job.kind} jobs`,
        { hint: 'run the agent as the PostgreSQL OS user for backups, checks and stanza-create' });
    }
    switch (job.kind) {
      case 'dbOpen': return this.dbOpen(job.dbOpen!.dbSessionId, job.dbOpen!.applicationName);
      case 'dbQuery': return this.dbQuery(job.dbQuery!.dbSessionId, job.dbQuery!.sql, job.dbQuery!.params);
      case 'dbClose': return this.dbClose(job.dbClose!.dbSessionId);
      case 'controlRead': return pgControlRead(this.ctx.pgPath);
      case 'clock': return { timeMs: Date.now() };
      case 'list': return this.list(job.list!.followTablespaces, emit);
      case 'backupFiles': return this.backupFiles(job, signal);
      case 'checksumFiles': return this.checksumFiles(job, emit, signal);
      case 'restorePrepare': return this.restorePrepare(job);
      case 'restoreFiles': return this.restoreFiles(job, signal);
      case 'restoreFinish': return this.restoreFinish(job, signal);
      default: throw new AssertError(`unknown job kind '${String(job.kind)}'`, { hint: 'upgrade openrds-agent to the version of the repo-server' });
    }
  }

  private async dbOpen(id: string, applicationName: string): Promise<unknown> {
    // A broken connection must not crash the daemon; the next query reports it.
    const client = await pgConnect(this.ctx.config, applicationName || 'openrds', (err) => log.warn(`database session '${id}' lost: ${err.message}`));
    const rows = await client.query('SELECT current_setting(\'server_version_num\')::int AS v');
    for (const sql of pgSql(Math.floor(rows.rows[0].v / 10000)).sessionSetup) await client.query(sql);
    this.dbSessions.set(id, client);
    return {};
  }

  private async dbQuery(id: string, sql: string, params: string[]): Promise<unknown> {
    const client = this.dbSessions.get(id);
    if (!client) throw new DbQueryError(`database session '${id}' is not open`, { hint: 'the agent may have restarted: retry the command' });
    try {
      const res = await client.query(sql, params.length > 0 ? params : undefined);
      return { rows: res.rows };
    } catch (err) {
      throw new DbQueryError(`query failed: ${(err as Error).message}\nquery: ${sql}`);
    }
  }

  private async dbClose(id: string): Promise<unknown> {
    const client = this.dbSessions.get(id);
    this.dbSessions.delete(id);
    await client?.end();
    return {};
  }

  private async list(followTablespaces: boolean, emit: JobEmit): Promise<unknown> {
    let page: FileEntry[] = [];
    let count = 0;
    for await (const entry of pgDataList(this.ctx.pgPath, { followTablespaces })) {
      page.push(entry);
      count++;
      if (page.length >= LIST_PAGE_SIZE) {
        await emit({ listPage: { entries: page } });
        page = [];
      }
    }
    if (page.length > 0) await emit({ listPage: { entries: page } });
    return { count, timeMs: Date.now() };
  }

  /**
   * Streams the job's files to the repo-server on `processMax` lanes, each one PutBackupFile call
   * carrying file after file (header, compressed chunks, trailer): no round trip or call set-up
   * per file, so a cluster of many small files is not bound by latency. Files are taken in the
   * order sent (largest first), so the tail of the job stays short.
   */
  private async backupFiles(job: Job__Output, signal: AbortSignal): Promise<unknown> {
    const spec = job.backupFiles!;
    const compressType = spec.compressType as CompressType;
    const cipher = spec.cipher?.id ? { id: spec.cipher.id, key: Buffer.from(spec.cipher.key) } : undefined;
    const files = spec.files;
    // The job's process-max bounds the worker threads it uses, as it bounds the files in flight.
    const pool = this.pool.limited(spec.processMax || 1);
    const checksumType = checksumTypeParse(spec.checksumType || 'sha256');
    const common = { pgPath: this.ctx.pgPath, compressType, compressLevel: spec.compressLevel, signal, pool, checksumType, ...(cipher ? { cipher } : {}) };
    // Shared by the lanes: the next file to send, and whether a lane failed (the others stop).
    const state = { next: 0, failed: false };
    type Group = { files: typeof files; small?: Promise<Awaited<ReturnType<typeof backupFilesSmall>>> };
    /**
     * The lane's next files: one large file (streamed when sent), or a run of small ones whose
     * read and compression start now, on a worker, while the lane sends the group before.
     */
    const take = (): Group | undefined => {
      if (state.next >= files.length || state.failed) return undefined;
      const group = [files[state.next++]!];
      if (group[0]!.size > SMALL_FILE_MAX) return { files: group };
      let bytes = group[0]!.size;
      while (group.length < SMALL_GROUP_FILES && bytes < SMALL_GROUP_BYTES && state.next < files.length && files[state.next]!.size <= SMALL_FILE_MAX) {
        bytes += files[state.next]!.size;
        group.push(files[state.next++]!);
      }
      const small = backupFilesSmall(group, common);
      small.catch(() => undefined);
      return { files: group, small };
    };
    const lane = async (): Promise<void> => {
      const { call, response, failure } = grpcClientStream<PutFileMessage, PutFileResult__Output>(
        (cb) => this.ctx.client.putBackupFile(cb));
      const writer = new GrpcChunkLane<PutFileMessage>(call);
      try {
        let group = take();
        while (group && !state.failed) {
          signal.throwIfAborted();
          // Small files are read ahead: the next run is read and compressed while this one is sent.
          const next = group.small ? take() : undefined;
          const results = group.small ? await group.small : undefined;
          for (const [i, file] of group.files.entries()) {
            await writer.write({ header: { jobId: job.jobId, name: file.name, compressType } }, 0);
            let result;
            if (results) {
              result = results[i]!;
              const bytes = result.repoData ?? Buffer.alloc(0);
              for (let offset = 0; offset < bytes.length; offset += CHUNK_SIZE) await writer.write({ chunk: { data: bytes.subarray(offset, offset + CHUNK_SIZE) } }, Math.min(CHUNK_SIZE, bytes.length - offset));
            } else {
              result = await backupFile(() => writer.sink((data) => ({ chunk: { data } })), { ...common, name: file.name, size: file.size });
            }
            await writer.write({
              trailer: {
                size: result.size, sha256: result.sha256, repoSize: result.repoSize, repoSha256: result.repoSha256,
                missing: result.missing, mtime: 0, pageChecksumErrors: [],
              },
            }, 0);
          }
          group = next ?? take();
        }
        call.end();
      } catch (err) {
        state.failed = true;
        // When the repo-server refused a file, its reason is the error to report.
        call.cancel();
        throw failure() ?? err;
      }
      await response;
    };
    const lanes = Math.max(1, Math.min(spec.processMax || 1, files.length));
    const results = await Promise.allSettled(Array.from({ length: lanes }, lane));
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    return {};
  }

  private async checksumFiles(job: Job__Output, emit: JobEmit, signal: AbortSignal): Promise<unknown> {
    const checksumType = checksumTypeParse(job.checksumFiles!.checksumType || 'sha256');
    for (const file of job.checksumFiles!.files) {
      signal.throwIfAborted();
      const r = await backupFile(() => new Writable({ write: (_c, _e, cb) => cb() }), {
        pgPath: this.ctx.pgPath, name: file.name, size: file.size, compressType: 'none', compressLevel: 0, signal, checksumType,
      });
      await emit({ fileDone: { name: file.name, missing: r.missing, size: r.size, sha256: r.sha256 } });
    }
    return {};
  }

  private async restorePrepare(job: Job__Output): Promise<unknown> {
    const spec = job.restorePrepare!;
    const pgPath = spec.pgPath;
    if (!path.isAbsolute(pgPath)) throw new AssertError(`restore path '${pgPath}' is not absolute`);
    if (fs.existsSync(path.join(pgPath, 'postmaster.pid'))) {
      throw new PgRunningError(`unable to restore while PostgreSQL is running: '${pgPath}/postmaster.pid' exists`,
        { hint: 'stop the cluster first; if it is not running, remove the stale postmaster.pid' });
    }
    let entries: string[] = [];
    try { entries = await fs.promises.readdir(pgPath); } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (entries.length > 0) {
      if (!spec.delta) {
        throw new PathNotEmptyError(`unable to restore to path '${pgPath}' because it contains files`,
          { hint: 'restore into an empty directory, or use --delta over an existing copy of the cluster' });
      }
      if (!fs.existsSync(path.join(pgPath, 'PG_VERSION'))) {
        throw new PathNotEmptyError(`unable to delta restore to path '${pgPath}': it does not look like a PostgreSQL data directory (no PG_VERSION)`,
          { hint: 'check --pg1-path: a delta restore removes whatever is not in the backup' });
      }
      await this.deltaClean(spec);
    }
    await fs.promises.mkdir(pgPath, { recursive: true, mode: 0o700 });
    const root = spec.paths.find((p) => p.name === '');
    await fs.promises.chmod(pgPath, root?.mode || 0o700);
    for (const link of spec.links) {
      let linkEntries: string[] = [];
      try { linkEntries = await fs.promises.readdir(link.destination); } catch { /* created below */ }
      if (linkEntries.length > 0 && !spec.delta) {
        throw new PathNotEmptyError(`unable to restore link '${link.name}' to path '${link.destination}' because it contains files`,
          { hint: 'remove the old tablespace directory or map it elsewhere' });
      }
      await fs.promises.mkdir(link.destination, { recursive: true, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        throw new FileWriteError(`unable to create '${link.destination}' for link '${link.name}': ${err.code ?? err.message}`,
          { hint: `create it (empty, owned by ${os.userInfo().username}) or fix the permissions of its parent` });
      });
    }
    for (const p of [...spec.paths].sort((a, b) => a.name.localeCompare(b.name))) {
      if (p.name === '') continue;
      const abs = path.join(pgPath, p.name);
      const link = spec.links.find((l) => l.name === p.name);
      if (link) {
        await fs.promises.mkdir(path.dirname(abs), { recursive: true, mode: 0o700 });
        await fs.promises.symlink(link.destination, abs).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST' && spec.delta) return;
          if (err.code === 'EEXIST') throw new FileExistsError(`link '${abs}' already exists`);
          throw err;
        });
        continue;
      }
      await fs.promises.mkdir(abs, { recursive: true, mode: p.mode || 0o700 });
      await fs.promises.chmod(abs, p.mode || 0o700);
    }
    for (const link of spec.links) {
      const abs = path.join(pgPath, link.name);
      if (!fs.existsSync(abs)) await fs.promises.symlink(link.destination, abs);
    }
    return {};
  }

  /**
   * Delta restore: removes what the backup does not have (files, directories, links pointing
   * elsewhere), pg_control first so that an interrupted restore cannot be started.
   */
  private async deltaClean(spec: NonNullable<Job__Output['restorePrepare']>): Promise<void> {
    const pgPath = spec.pgPath;
    await fs.promises.rm(path.join(pgPath, 'global', 'pg_control'), { force: true });
    if (fs.existsSync(path.join(pgPath, 'global'))) await fsyncDir(path.join(pgPath, 'global'));
    const files = new Set(spec.files);
    const dirs = new Set(spec.paths.map((p) => p.name));
    const links = new Map(spec.links.map((l) => [l.name, l.destination]));
    let removed = 0;
    for await (const e of pgDataList(pgPath, { followTablespaces: true })) {
      const name = e.name as string;
      const abs = path.join(pgPath, name);
      if (e.type === 'dir' ? dirs.has(name) : e.type === 'link' ? links.get(name) === e.linkTarget : files.has(name)) continue;
      await fs.promises.rm(abs, { recursive: e.type === 'dir', force: true });
      removed++;
    }
    log.info(`delta restore: removed ${removed} file(s), director(ies) or link(s) that are not in the backup`);
  }

  private async fetchFile(jobId: string, file: RestoreFileSpec__Output, destination: string, signal: AbortSignal, keys: CipherKeyLookup | undefined): Promise<void> {
    await restoreFile(() => {
      const call = this.ctx.client.getBackupFile({ jobId, repoKey: file.repoKey });
      return grpcChunkReader<DataChunk__Output>(grpcMessages(call), (m) => m.data, () => call.cancel());
    }, {
      destination, size: file.size, sha256: file.sha256, mtime: file.mtime, mode: file.mode || 0o600,
      compressType: file.compressType as CompressType, signal, ...(keys ? { keys } : {}),
    });
  }

  /**
   * Restores the job's files: with --delta, files already right in place are kept; the rest are
   * fetched on `processMax` lanes, each call carrying a group of files (largest first), decompressed,
   * checked against their sha256 and written by the workers; every fsync has finished before the
   * job reports done.
   */
  private async restoreFiles(job: Job__Output, signal: AbortSignal): Promise<unknown> {
    const spec = job.restoreFiles!;
    const keys = jobKeys(spec.cipherKeys);
    // The job's process-max bounds the worker threads it uses, as it bounds the files in flight.
    const pool = this.pool.limited(spec.processMax || 1);
    let kept = 0;
    const fetch: RestoreFileSpec__Output[] = [];
    const empty: RestoreFileSpec__Output[] = [];
    if (spec.delta) {
      // Checked in place by the workers, in runs (one message per run of small files): a few runs
      // in flight keep every worker busy while this thread only sorts the answers.
      const runs: RestoreFileSpec__Output[][] = [];
      let run: RestoreFileSpec__Output[] = [], runBytes = 0;
      for (const file of spec.files) {
        if (run.length > 0 && (run.length >= SMALL_GROUP_FILES || runBytes + file.size > DELTA_RUN_BYTES)) { runs.push(run); run = []; runBytes = 0; }
        run.push(file);
        runBytes += file.size;
      }
      if (run.length > 0) runs.push(run);
      await forEachLimit(runs, DELTA_RUNS_IN_FLIGHT, async (files) => {
        signal.throwIfAborted();
        const same = await pool.deltaCheck(files.map((file) => ({
          path: path.join(spec.pgPath, file.name), size: file.size, sha256: file.sha256 || SHA256_EMPTY, mtime: file.mtime, mode: file.mode || 0o600,
          force: spec.force, emptySame: checksumIsEmpty(file.sha256),
        })));
        for (const [i, file] of files.entries()) {
          if (same[i]) kept++;
          else (file.size === 0 ? empty : fetch).push(file);
        }
      });
    } else {
      for (const file of spec.files) (file.size === 0 ? empty : fetch).push(file);
    }
    // Empty files have no repo bytes: written (and fsynced in the background) in runs on a worker.
    for (let i = 0; i < empty.length; i += SMALL_GROUP_FILES) {
      signal.throwIfAborted();
      const run = empty.slice(i, i + SMALL_GROUP_FILES);
      await restoreFilesSmall(run.map((file) => ({
        repoData: Buffer.alloc(0),
        opts: { ...this.restoreOptions(file, path.join(spec.pgPath, file.name), signal, undefined, pool), compressType: 'none' as const, sha256: file.sha256 || SHA256_EMPTY },
      })), pool);
    }
    fetch.sort((a, b) => b.size - a.size);
    const state = { next: 0, failed: false };
    const lane = async (): Promise<void> => {
      while (state.next < fetch.length && !state.failed) {
        const group: RestoreFileSpec__Output[] = [];
        let bytes = 0;
        while (state.next < fetch.length && group.length < RESTORE_GROUP_FILES && (group.length === 0 || bytes < RESTORE_GROUP_BYTES)) {
          const f = fetch[state.next++]!;
          group.push(f);
          bytes += f.size;
        }
        try {
          await this.fetchFiles(job.jobId, spec.pgPath, group, signal, keys, pool);
        } catch (err) {
          state.failed = true;
          throw err;
        }
      }
    };
    const lanes = Math.max(1, Math.min(spec.processMax || 1, fetch.length));
    const results = await Promise.allSettled(Array.from({ length: lanes }, lane));
    // Large files were fsynced in the background: all of them are durable before the job is done.
    const synced = pool.syncAll();
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) { await synced.catch(() => undefined); throw rejected.reason; }
    await synced;
    return { kept, restored: spec.files.length - kept };
  }

  private restoreOptions(file: RestoreFileSpec__Output, destination: string, signal: AbortSignal, keys: CipherKeyLookup | undefined, pool: FilterPool): RestoreFileOptions {
    return {
      destination, size: file.size, sha256: file.sha256, mtime: file.mtime, mode: file.mode || 0o600,
      compressType: file.compressType as CompressType, signal, pool, ...(keys ? { keys } : {}),
    };
  }

  /**
   * Fetches a group of files on one GetBackupFiles call. A large file is written (on a worker) as
   * it arrives; small files are gathered into runs that a worker decompresses, checks and writes
   * while the next ones arrive. fsyncs run in the background (the job waits with syncAll).
   */
  private async fetchFiles(jobId: string, pgPath: string, group: RestoreFileSpec__Output[], signal: AbortSignal, keys: CipherKeyLookup | undefined,
    pool: FilterPool): Promise<void> {
    const call = this.ctx.client.getBackupFiles({ jobId, repoKeys: group.map((f) => f.repoKey) });
    const iter = grpcMessages<GetFilesMessage__Output>(call);
    const writing = new Set<Promise<void>>();
    const failures: unknown[] = [];
    let run: { repoData: Buffer; opts: RestoreFileOptions }[] = [];
    let runBytes = 0;
    const flush = async (): Promise<void> => {
      if (run.length === 0) return;
      const files = run;
      run = [];
      runBytes = 0;
      const w: Promise<void> = restoreFilesSmall(files, pool).catch((err: unknown) => { failures.push(err); }).finally(() => writing.delete(w));
      writing.add(w);
      if (writing.size >= RESTORE_RUNS_IN_FLIGHT) await Promise.race(writing);
    };
    try {
      for (const file of group) {
        if (failures.length > 0) throw failures[0];
        const start = await iter.next();
        if (start.done || start.value.start?.repoKey !== file.repoKey) {
          throw new ProtocolError(`expected repo file '${file.repoKey}' from the repo-server, got ${start.done ? 'the end of the call' : 'another message'}`);
        }
        const opts = this.restoreOptions(file, path.join(pgPath, file.name), signal, keys, pool);
        if (file.size <= SMALL_FILE_MAX) {
          const parts: Buffer[] = [];
          for (;;) {
            const m = await iter.next();
            if (m.done) throw new ProtocolError(`repo file '${file.repoKey}' was cut short`);
            if (m.value.end) break;
            if (m.value.chunk?.data) parts.push(m.value.chunk.data);
          }
          const repoData = Buffer.concat(parts);
          run.push({ repoData, opts });
          runBytes += repoData.length + file.size;
          if (run.length >= SMALL_GROUP_FILES || runBytes >= SMALL_GROUP_BYTES) await flush();
        } else {
          await flush();
          await restoreFile(() => grpcChunkReader<GetFilesMessage__Output>(iter, (m) => (m.end ? null : m.chunk?.data)), opts);
        }
      }
      await flush();
      await Promise.all(writing);
      if (failures.length > 0) throw failures[0];
    } catch (err) {
      call.cancel();
      await Promise.all(writing);
      throw err;
    }
  }

  private async restoreFinish(job: Job__Output, signal: AbortSignal): Promise<unknown> {
    const spec = job.restoreFinish!;
    const settings = spec.recovery.map((s) => ({ key: s.key, value: s.value }));
    if (spec.restoreCommandAuto) {
      const restoreCommand = agentRestoreCommand(this.ctx.config, spec.stanza);
      settings.unshift({ key: 'restore_command', value: restoreCommand });
      const warning = commandLengthWarning('restore_command', restoreCommand, spec.pgVersion);
      if (warning) log.warn(warning);
      // The WAL recovery starts with is fetched ahead while PostgreSQL is still to be started.
      if (spec.walStart && spec.stanza === this.ctx.stanza) this.ctx.walPrefetch?.(spec.walStart, { toEnd: recoversToEnd(spec.signalFile, settings) });
    }
    await recoveryWrite({ pgPath: spec.pgPath, pgVersion: spec.pgVersion, settings, signalFile: spec.signalFile });
    if (spec.tablespaceMap) await writeFileDurable(path.join(spec.pgPath, 'tablespace_map'), spec.tablespaceMap, 0o600);
    // pg_control goes last: until it is in place the directory cannot be started by mistake.
    if (spec.pgControl) {
      const tmp = path.join(spec.pgPath, 'global', 'pg_control.openrds.tmp');
      await this.fetchFile(job.jobId, spec.pgControl, tmp, signal, jobKeys(spec.cipherKeys));
      await fs.promises.rename(tmp, path.join(spec.pgPath, 'global', 'pg_control'));
    }
    // Restored by root (restore-as-root): everything goes to the cluster's owner before it is synced.
    if (this.ctx.restoreOwner) await chownTree(spec.pgPath, this.ctx.restoreOwner);
    await fsyncTree(spec.pgPath);
    return {};
  }
}

/** Runs of files a delta restore has the workers check at once, and the bytes of a run. */
const DELTA_RUNS_IN_FLIGHT = 8;
const DELTA_RUN_BYTES = 16 * 1024 * 1024;

/** Runs of small files a restore lane has decompressing or writing while it receives the next. */
const RESTORE_RUNS_IN_FLIGHT = 3;

/** Small files (and their bytes at most) read and compressed in one worker message of a backup lane. */
const SMALL_GROUP_FILES = 64;
const SMALL_GROUP_BYTES = 4 * 1024 * 1024;

/** Files and bytes of one GetBackupFiles call of a restore lane. */
const RESTORE_GROUP_FILES = 512;
const RESTORE_GROUP_BYTES = 256 * 1024 * 1024;

/** Jobs a root agent (restore-as-root) runs. */
const RESTORE_JOBS = new Set(['restorePrepare', 'restoreFiles', 'restoreFinish', 'clock']);

/** lchown of a tree and of the tablespaces its pg_tblspc links point to. */
async function chownTree(root: string, owner: { uid: number; gid: number }): Promise<void> {
  const walk = async (dir: string): Promise<void> => {
    await fs.promises.lchown(dir, owner.uid, owner.gid);
    for (const e of await fs.promises.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        await fs.promises.lchown(p, owner.uid, owner.gid);
        if (e.isSymbolicLink() && path.basename(dir) === 'pg_tblspc') {
          const target = await fs.promises.realpath(p).catch(() => undefined);
          if (target) await walk(target);
        }
      }
    }
  };
  await walk(root);
}

/** fsyncs every directory of a tree (files were synced as they were written). */
async function fsyncTree(root: string): Promise<void> {
  const dirs = [root];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    for (const e of await fs.promises.readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) dirs.push(path.join(dir, e.name));
      else if (e.isSymbolicLink() && dir === path.join(root, 'pg_tblspc')) dirs.push(await fs.promises.realpath(path.join(dir, e.name)));
    }
    await fsyncDir(dir);
  }
}

/** The keys a restore job brought (none: the repository is not encrypted). */
function jobKeys(keys: readonly CipherKey__Output[] | undefined): CipherKeyLookup | undefined {
  if (!keys || keys.length === 0) return undefined;
  return cipherKeyLookup(keys.map((k) => ({ id: k.id, key: Buffer.from(k.key) })), 'this restore job');
}
