import { EventEmitter } from 'node:events';
import { serverPool } from '../../repo/pool';
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import {
  ArchiveDuplicateError, ArchiveMismatchError, ChecksumError, FormatError, KeyedMutex, Sha256Filter, SizeFilter,
  COMPRESS_EXTENSION_RE, FilterPool, WAL_WARM_MS, ZstdDataError, zstdDecompressBuffer, compressExtension, compressTypeOf, decompressFilters, decryptBuffer, decryptFilters, log, walFileKind, walHeaderParse,
} from '@openrds/common';
import type { CompressType, IoFilter } from '@openrds/common';
import { VerifyTap } from '../../server/verify-tap';
import { STAGE_PART_MAX, StageTable, stageMissing, stageRefused, stageScratch } from './archive-stage';
import { Repo, archiveIdOf, type ArchiveInfo } from '../../repo/repo';

/** Keeps the first `size` bytes that pass through (the WAL long page header). */
class HeadFilter implements IoFilter<Buffer> {
  readonly name = 'head';
  private readonly parts: Buffer[] = [];
  private length = 0;
  readonly stream: Transform;

  constructor(private readonly size: number) {
    this.stream = new Transform({
      transform: (chunk: Buffer, _enc, cb: TransformCallback) => {
        if (this.length < this.size) {
          const part = chunk.subarray(0, this.size - this.length);
          this.parts.push(Buffer.from(part));
          this.length += part.length;
        }
        cb(null, chunk);
      },
    });
  }

  result(): Buffer { return Buffer.concat(this.parts); }
}

export interface ArchivePushRequest {
  stanza: string;
  walName: string;
  size: number;
  sha256: string;
  compressType: CompressType;
  /** Uncompressed bytes at the start taken from the agent's staged parts (archive-push-stream). */
  staged?: number;
  agentId?: string;
}

export interface ArchiveStageRequest { stanza: string; walName: string; agentId: string; offset: number; size: number; data: Buffer }

const SHA256_RE = /^[0-9a-f]{64}$/;
/**
 * Compressed bytes of staged WAL parts a repository on an object store holds in memory at most
 * (its stages have no temp file): past it, stages are refused and the agents push whole.
 */
const STAGE_MEMORY_MAX = 256 * 1024 * 1024;
/**
 * How long a staged push waits for the parts it names that have not arrived (its agent does not
 * wait for their answers). A part that never comes (its call failed) costs the push this long,
 * then the agent pushes the file whole.
 */
const STAGE_WAIT_MS = 1000;
/** WAL files up to this size are checked whole (a segment is 16 MiB by default). */
const WHOLE_MAX = 64 * 1024 * 1024;

/** Worker threads that check pushed WAL (shared by the repositories). */
const archivePool = serverPool;

/** Reads a stream into memory, as the chunks it came in, refusing more than `max` bytes. */
async function readParts(source: Readable, max: number, what: string): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += (chunk as Buffer).length;
    if (total > max) throw new FormatError(`WAL file '${what}' arrived larger than its size allows`);
    parts.push(chunk as Buffer);
  }
  return parts;
}
const WAL_HEADER_READ = 64;

/** The most compressed bytes a WAL file of `size` bytes may arrive as (zstd's worst case, with room). */
function packedMax(size: number): number {
  return size + Math.ceil(size / 16) + 1024 * 1024;
}

/** A zstd error of an arriving WAL file as the checksum failure it is (PostgreSQL retries); other errors as they are. */
function arrivedDamaged(err: unknown, walName: string): unknown {
  return err instanceof ZstdDataError ? new ChecksumError(`WAL file '${walName}' arrived damaged: ${err.message}`, { hint: 'PostgreSQL will retry' }) : err;
}

/**
 * The WAL archive of a repository: stores pushed files complete-or-missing after checking them
 * (the WAL header against the stanza, the checksum of the bytes received), refuses to overwrite a
 * different file of the same name, and finds files for archive-get.
 */
export class ArchiveStore {
  private readonly mutex = new KeyedMutex();
  private readonly stages = new StageTable();
  /** Set once the repo-server stops: stages already made are dropped, new ones refused. */
  private stagesClosed = false;
  /** 'stored' (stanza/walName) once a push has the file in the archive (new or the same again). */
  private readonly events = new EventEmitter().setMaxListeners(0);

  /**
   * @param stageMemoryMax compressed bytes of staged parts held in memory at most (see STAGE_MEMORY_MAX).
   * @param stageWaitMs how long a staged push waits for the parts it names still on their way (see STAGE_WAIT_MS).
   */
  constructor(private readonly repo: Repo, private readonly stageMemoryMax = STAGE_MEMORY_MAX, private readonly stageWaitMs = STAGE_WAIT_MS) {}

  /**
   * Stages one finished part of a segment PostgreSQL is still writing (see archive-stage.ts).
   * Offset 0 starts the segment over; any other offset must be where a staged part ends (a part
   * sent again replaces what followed it). Returns the uncompressed bytes staged now.
   */
  async stage(infoLoad: () => Promise<ArchiveInfo>, req: ArchiveStageRequest): Promise<number> {
    if (walFileKind(req.walName) !== 'segment') throw new FormatError(`'${req.walName}' is not a WAL segment name`);
    if (this.repo.cipher.enabled) throw stageRefused('the repository is encrypted (WAL is sealed whole on the database host)');
    if (!Number.isSafeInteger(req.offset) || req.offset < 0 || !Number.isSafeInteger(req.size) || req.size <= 0 || req.size > STAGE_PART_MAX || req.offset + req.size > WHOLE_MAX) {
      throw new FormatError(`invalid staged part of WAL file '${req.walName}' (offset ${req.offset}, size ${req.size})`);
    }
    const id = StageTable.idOf(req.stanza, req.walName, req.agentId);
    const run = (): Promise<number> => this.mutex.run(`stage:${id}`, async () => {
      // archive.info is read when a segment starts (its header is checked then); the push checks the archive id again.
      const info = req.offset === 0 ? await infoLoad() : undefined;
      let st = this.stages.get(id);
      if (info) {
        const archiveId = archiveIdOf(info.db);
        // A segment already in the archive is not staged: its push came first (pushed whole while
        // the agent's stream was about to begin it), and no push would ever take or drop the stage.
        if ((await this.find(req.stanza, archiveId, req.walName)).length > 0) throw stageMissing(req.walName, 'it is in the archive already');
        st = await this.stages.create(id, archiveId, async () => this.repo.storage.appendable?.(`${this.repo.walDir(req.stanza, archiveId, req.walName)}/${req.walName}`));
        // Made once the server stops (a call forceShutdown cut off still runs): no temp file may outlive it.
        if (this.stagesClosed) {
          await this.stages.drop(id);
          throw stageMissing(req.walName, 'the repo-server is stopping');
        }
      }
      if (!st) throw stageMissing(req.walName, `nothing is staged before offset ${req.offset}`);
      if (req.offset > st.raw || st.hashAt(req.offset) === undefined) throw stageMissing(req.walName, `offset ${req.offset} is not where a staged part ends`);
      try {
        await st.cut(req.offset);
        const held = st.file ? 0 : this.stages.memoryBytes();
        if (held + req.data.length > this.stageMemoryMax) {
          throw stageRefused(`the repo-server holds ${held} bytes of staged WAL in memory (an object store keeps stages there until their push), ${this.stageMemoryMax} at most`);
        }
        await st.add(req.data, req.size, WAL_HEADER_READ);
        if (info) {
          const header = walHeaderParse(st.head);
          if (header.systemId !== info.db.systemId || header.pgVersion !== info.db.pgVersion) {
            throw new ArchiveMismatchError(
              `WAL file '${req.walName}' is from PostgreSQL ${header.pgVersion} with system-id ${header.systemId}, but stanza '${req.stanza}' is PostgreSQL ${info.db.pgVersion} with system-id ${info.db.systemId}`,
              { hint: 'is archive_command pointing at the correct stanza? nothing was stored' });
          }
        }
      } catch (err) {
        await this.stages.drop(id);
        throw err;
      }
      // A push waiting for this part goes on (see StageTable.reached).
      this.stages.changed(id);
      return st.raw;
    });
    // A segment's first part holds the segment's lock, as a push does from its stage drop to its
    // store (and in the same order: the segment's, then the stage's), so that the check above
    // cannot miss a push that is storing the segment.
    return req.offset === 0 ? this.mutex.run(`${req.stanza}/${req.walName}`, run) : run();
  }

  /** Repo key of a pushed WAL file. History files keep their name; others carry their sha256. */
  keyOf(stanza: string, archiveId: string, walName: string, sha256: string, compressType: CompressType): string {
    if (walFileKind(walName) === 'history') return `${this.repo.archiveIdPath(stanza, archiveId)}/${walName}${compressExtension[compressType]}`;
    return `${this.repo.walDir(stanza, archiveId, walName)}/${walName}-${sha256}${compressExtension[compressType]}`;
  }

  /**
   * Existing copies of a WAL file in one archive id: their keys and sha256. A posix repository is
   * listed with one synchronous call (a directory of 256 segments at most, in well under a
   * millisecond): a push waits for this listing, and on a busy host a trip through libuv's threads
   * took up to 11 ms of it.
   */
  async find(stanza: string, archiveId: string, walName: string): Promise<{ key: string; sha256: string; compressType: CompressType }[]> {
    const kind = walFileKind(walName);
    const storage = this.repo.storage;
    const list = (dir: string, expression: RegExp): Promise<string[]> | string[] =>
      storage.listSync ? storage.listSync(dir, { expression }) : storage.list(dir, { expression });
    if (kind === 'history') {
      const dir = this.repo.archiveIdPath(stanza, archiveId);
      const names = await list(dir, new RegExp(`^${walName.replace('.', '\\.')}${COMPRESS_EXTENSION_RE}?$`));
      return names.map((n) => ({ key: `${dir}/${n}`, sha256: '', compressType: compressTypeOf(n) }));
    }
    const dir = this.repo.walDir(stanza, archiveId, walName);
    const names = await list(dir, new RegExp(`^${walName.replace(/\./g, '\\.')}-[0-9a-f]{64}${COMPRESS_EXTENSION_RE}?$`));
    return names.map((n) => ({
      key: `${dir}/${n}`, sha256: n.slice(walName.length + 1, walName.length + 65),
      compressType: compressTypeOf(n),
    }));
  }

  /**
   * Stores one pushed file from `source` (bytes compressed as the request says). Resolves once the
   * file is durable; a duplicate of identical content resolves with a warning.
   */
  async push(info: ArchiveInfo, req: ArchivePushRequest, source: Readable): Promise<{ duplicate: boolean; warning: string; key: string }> {
    const kind = walFileKind(req.walName);
    if (!kind) throw new FormatError(`'${req.walName}' is not a WAL file name`);
    if (!SHA256_RE.test(req.sha256)) throw new FormatError(`invalid sha256 '${req.sha256}' for WAL file '${req.walName}'`);
    const archiveId = archiveIdOf(info.db);
    // A staged push waits for its stage's last parts still on their way, outside the locks (a
    // part holds the stage's; a first part, the segment's too). Not there in time, the push is
    // refused below (not a staged prefix) and the agent pushes the file whole.
    let waited = 0;
    if (req.staged && req.agentId !== undefined) {
      const t = Date.now();
      await this.stages.reached(StageTable.idOf(req.stanza, req.walName, req.agentId), req.staged, this.stageWaitMs);
      waited = Date.now() - t;
    }
    const stored = await this.mutex.run(`${req.stanza}/${req.walName}`, async () => {
      const found = this.find(req.stanza, archiveId, req.walName);
      found.catch(() => undefined);
      /**
       * The answer when the archive has the file already: a duplicate (same content), else refused;
       * nothing is written. `staged`: asked by pushStaged, which holds the stage's lock and has
       * taken the stage and read the upload already (a stageDrop here would wait for that lock).
       */
      const existingAnswer = async (existing: Awaited<typeof found>, staged: boolean): Promise<{ duplicate: boolean; warning: string; key: string }> => {
        const same = kind === 'history'
          ? await this.historySha(req.stanza, existing[0]!.key, existing[0]!.compressType) === req.sha256
          : existing.some((e) => e.sha256 === req.sha256);
        if (!staged) await this.stageDrop(req);
        if (same) {
          // Read the rest of the upload so that the agent's stream ends cleanly before the answer.
          if (!staged) await pipeline(source, new Writable({ write: (_c, _e, cb) => cb() }));
          const warning = `WAL file '${req.walName}' already exists in the archive with the same checksum\nHINT: this is valid in some recovery scenarios but may also indicate a problem.`;
          log.warn(warning);
          return { duplicate: true, warning, key: existing[0]!.key };
        }
        throw new ArchiveDuplicateError(`WAL file '${req.walName}' already exists in the archive of stanza '${req.stanza}' with a different checksum`,
          { hint: 'this is a serious problem: is another cluster archiving to this stanza? nothing was overwritten' });
      };
      const key = this.keyOf(req.stanza, archiveId, req.walName, req.sha256, req.compressType);
      const check = (got: { sha256: string; size: number; head: Buffer }): void => {
        if (got.sha256 !== req.sha256 || got.size !== req.size) {
          throw new ChecksumError(`WAL file '${req.walName}' arrived with sha256 ${got.sha256} size ${got.size}, but the agent sent sha256 ${req.sha256} size ${req.size}`,
            { hint: 'the file changed while it was read, or the transfer was damaged: PostgreSQL will retry' });
        }
        if (kind === 'segment' || kind === 'partial') {
          const header = walHeaderParse(got.head);
          if (header.systemId !== info.db.systemId || header.pgVersion !== info.db.pgVersion) {
            throw new ArchiveMismatchError(
              `WAL file '${req.walName}' is from PostgreSQL ${header.pgVersion} with system-id ${header.systemId}, but stanza '${req.stanza}' is PostgreSQL ${info.db.pgVersion} with system-id ${info.db.systemId}`,
              { hint: 'is archive_command pointing at the correct stanza? nothing was stored' });
          }
        }
      };
      // A staged push receives and checks its rest while the archive is listed (an object store's
      // listing is a request; posix lists synchronously), and looks at the listing before the
      // file takes its name.
      if (req.staged) {
        return this.pushStaged(info, req, source, key, waited, check, async () => {
          const existing = await found;
          return existing.length > 0 ? existingAnswer(existing, true) : undefined;
        });
      }
      const existing = await found;
      if (existing.length > 0) return existingAnswer(existing, false);
      // Pushed whole: a stage of it the agent gave up on is dropped.
      await this.stageDrop(req);
      // An encrypted repository takes only encrypted WAL (the agent seals it with the archive key).
      const keys = await this.repo.cipher.lookup(req.stanza);
      if (req.compressType === 'zst' && req.size <= WHOLE_MAX) {
        // A WAL segment is taken whole: decrypted here, decompressed and hashed on a worker (its
        // content is not kept), and stored with one put, complete or missing.
        const parts = await readParts(source, packedMax(req.size), req.walName);
        // Not encrypted, on a storage with temp files (posix): a worker writes the bytes as they
        // came (moved to it, not copied) and checks them while their fdatasync runs; the file
        // takes its name only once the check passed.
        const file = keys ? undefined : await this.repo.storage.appendable?.(key);
        if (file) {
          try {
            const got = await file.appendZstdChecked(parts, archivePool(), WAL_HEADER_READ).catch((err: unknown) => { throw arrivedDamaged(err, req.walName); });
            check(got);
            await file.commit(key, archivePool());
          } catch (err) {
            await file.abort().catch(() => undefined);
            throw err;
          }
          return { duplicate: false, warning: '', key };
        }
        const bytes = Buffer.concat(parts);
        const packed = keys ? decryptBuffer(keys, bytes, `WAL file '${req.walName}'`) : bytes;
        // Where the storage can (posix), the file is written and fsynced under a temp name while
        // it is checked, and takes its name only once the check passed.
        const staged = this.repo.storage.putStaged?.(key, bytes);
        staged?.catch(() => undefined);
        let digest: Awaited<ReturnType<FilterPool['zstdDigestWhole']>>;
        try {
          digest = await archivePool().zstdDigestWhole(packed, WAL_HEADER_READ).catch((err: unknown) => { throw arrivedDamaged(err, req.walName); });
          check({ sha256: digest.result.outSha256, size: digest.result.outSize, head: digest.head });
        } catch (err) {
          await staged?.then((s) => s.abort(), () => undefined).catch(() => undefined);
          throw err;
        }
        if (staged) {
          const handle = await staged;
          await handle.commit().catch(async (err: unknown) => { await handle.abort().catch(() => undefined); throw err; });
        }
        else await this.repo.storage.put(key, bytes);
        return { duplicate: false, warning: '', key };
      }
      const sha = new Sha256Filter(), size = new SizeFilter(), head = new HeadFilter(WAL_HEADER_READ);
      const tap = new VerifyTap([...decryptFilters(keys, `WAL file '${req.walName}'`), ...decompressFilters(req.compressType), head, sha, size],
        () => check({ sha256: sha.result(), size: size.result(), head: head.result() }));
      const writer = this.repo.storage.newWrite(key);
      try {
        await pipeline(source, tap, writer);
      } catch (err) {
        // Answer only once the refused write is cleaned up: nothing of it may be left when the agent hears.
        await finished(writer).catch(() => undefined);
        throw err;
      }
      return { duplicate: false, warning: '', key };
    });
    this.events.emit('stored', `${req.stanza}/${req.walName}`);
    // The next push (seconds or minutes away) finds its worker up.
    archivePool().keepWarm(WAL_WARM_MS);
    return stored;
  }

  /**
   * Resolves when a push of one of `walNames` to `stanza` is stored by this process, after `ms`,
   * or when `signal` aborts: a waiter for WAL (the end of a backup) hears of its segment at once
   * instead of at its next look, and still looks at the archive itself (another repo-server, a
   * copy made by hand).
   */
  storedOrAfter(stanza: string, walNames: string[], ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const want = new Set(walNames.map((n) => `${stanza}/${n}`));
      const done = (): void => { clearTimeout(timer); this.events.off('stored', on); signal?.removeEventListener('abort', done); resolve(); };
      const on = (key: string): void => { if (want.has(key)) done(); };
      const timer = setTimeout(done, ms);
      this.events.on('stored', on);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Drops every stage and its temp file, and takes no new one (the repo-server stops). */
  async stagesDrop(): Promise<void> {
    this.stagesClosed = true;
    for (const id of this.stages.ids()) await this.mutex.run(`stage:${id}`, () => this.stages.drop(id));
  }

  private async stageDrop(req: ArchivePushRequest): Promise<void> {
    if (this.stages.size === 0 || req.agentId === undefined) return;
    const id = StageTable.idOf(req.stanza, req.walName, req.agentId);
    await this.mutex.run(`stage:${id}`, () => this.stages.drop(id));
  }

  /**
   * The push of a segment whose first `req.staged` bytes were staged: the rest arrives (zstd
   * frames), continues the staged hash, and the whole is checked before it takes its name.
   */
  private async pushStaged(info: ArchiveInfo, req: ArchivePushRequest, source: Readable, key: string, waited: number,
    check: (got: { sha256: string; size: number; head: Buffer }) => void,
    existing: () => Promise<{ duplicate: boolean; warning: string; key: string } | undefined>): Promise<{ duplicate: boolean; warning: string; key: string }> {
    const staged = req.staged!;
    const id = StageTable.idOf(req.stanza, req.walName, req.agentId ?? '');
    const t0 = Date.now();
    return this.mutex.run(`stage:${id}`, async () => {
      const t1 = Date.now();
      const st = this.stages.take(id);
      // No stage (a whole push of the file stored it, a restart): the archive's answer first.
      if (!st) return (await existing()) ?? Promise.reject(stageMissing(req.walName, 'nothing is staged for it'));
      try {
        if (req.compressType !== 'zst') throw new FormatError(`a staged WAL file must be pushed with zst, not ${req.compressType}`);
        // Staged parts are plain: an encrypted repository takes the file whole (the agent seals it).
        if (this.repo.cipher.enabled) throw stageMissing(req.walName, 'the repository is encrypted');
        if (st.archiveId !== archiveIdOf(info.db)) throw stageMissing(req.walName, 'the stanza was upgraded');
        const hash = st.hashAt(staged);
        if (!hash || staged > req.size) throw stageMissing(req.walName, `${staged} bytes are not a staged prefix (${st.raw} staged)`);
        await st.cut(staged);
        const rest = req.size - staged;
        const tail = Buffer.concat(await readParts(source, packedMax(rest), req.walName));
        let raw: Buffer = Buffer.alloc(0);
        if (rest > 0 || tail.length > 0) {
          try {
            raw = zstdDecompressBuffer(tail, rest, stageScratch());
          } catch (err) {
            throw arrivedDamaged(err, req.walName);
          }
        }
        hash.update(raw);
        const head = st.head.length >= WAL_HEADER_READ ? st.head : Buffer.concat([st.head, raw]).subarray(0, WAL_HEADER_READ);
        check({ sha256: hash.digest('hex'), size: staged + raw.length, head });
        const duplicate = await existing();
        if (duplicate) {
          await st.abort();
          return duplicate;
        }
        const t2 = Date.now();
        if (st.file) {
          // The rest written by the worker that commits: one trip off the main thread, not two.
          await st.file.commit(key, archivePool(), tail);
        } else {
          await this.repo.storage.put(key, Buffer.concat([...st.parts, tail]));
        }
        log.debug(`staged push of '${req.walName}': waited for staged parts ${waited} ms, stage lock ${t1 - t0} ms, rest received and checked ${t2 - t1} ms, stored ${Date.now() - t2} ms`);
        return { duplicate: false, warning: '', key };
      } catch (err) {
        await st.abort();
        throw err;
      }
    });
  }

  private async historySha(stanza: string, key: string, compressType: CompressType): Promise<string> {
    const sha = new Sha256Filter();
    const decrypt = await this.repo.cipher.decryptFilters(stanza, `'${key}'`);
    await pipeline([await this.repo.storage.newRead(key), ...[...decrypt, ...decompressFilters(compressType)].map((f) => f.stream), sha.stream,
      new Writable({ write: (_chunk, _enc, cb) => cb() })]);
    return sha.result();
  }

  /** Looks a file up across the stanza's archive ids, newest db first. */
  async get(info: ArchiveInfo, stanza: string, walName: string): Promise<{ key: string; sha256: string; compressType: CompressType; archiveId: string; size: number } | undefined> {
    if (!walFileKind(walName)) throw new FormatError(`'${walName}' is not a WAL file name`);
    const dbs = [...info.history].sort((a, b) => b.id - a.id)
      .filter((db) => db.systemId === info.db.systemId && db.pgVersion === info.db.pgVersion);
    for (const db of dbs) {
      const archiveId = archiveIdOf(db);
      const found = await this.find(stanza, archiveId, walName);
      if (found.length > 1) log.warn(`WAL file '${walName}' has ${found.length} copies in archive '${archiveId}': using the first`);
      const hit = found[0];
      if (!hit) continue;
      let sha256 = hit.sha256;
      if (!sha256) sha256 = await this.historySha(stanza, hit.key, hit.compressType);
      return { ...hit, sha256, archiveId, size: -1 };
    }
    return undefined;
  }

  /** True when every segment is in the archive id. */
  async missing(stanza: string, archiveId: string, segments: string[]): Promise<string[]> {
    const missing: string[] = [];
    const byDir = new Map<string, Set<string>>();
    for (const seg of segments) {
      const dir = this.repo.walDir(stanza, archiveId, seg);
      let names = byDir.get(dir);
      if (!names) {
        names = new Set((await this.repo.storage.list(dir)).map((n) => n.slice(0, 24)));
        byDir.set(dir, names);
      }
      if (!names.has(seg)) missing.push(seg);
    }
    return missing;
  }

  /** The lowest and highest segment in an archive id, for `info`. */
  async range(stanza: string, archiveId: string): Promise<{ min: string; max: string } | undefined> {
    const dirs = (await this.repo.storage.list(this.repo.archiveIdPath(stanza, archiveId), { expression: /^[0-9A-F]{16}$/ }));
    let min: string | undefined, max: string | undefined;
    for (const dir of [dirs[0], dirs[dirs.length - 1]]) {
      if (!dir) continue;
      const segs = (await this.repo.storage.list(`${this.repo.archiveIdPath(stanza, archiveId)}/${dir}`))
        .map((n) => n.slice(0, 24)).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
      if (segs.length === 0) continue;
      if (!min || segs[0]! < min) min = segs[0];
      if (!max || segs[segs.length - 1]! > max) max = segs[segs.length - 1];
    }
    return min && max ? { min, max } : undefined;
  }
}
