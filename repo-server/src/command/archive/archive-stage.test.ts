import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { ArchiveDuplicateError, ArchiveMismatchError, ArchiveStageMissingError, ChecksumError, PosixStorage, zstdCompressBuffer, zstdDecompressBuffer } from '@openrds/common';
import { Repo } from '../../repo/repo';
import type { ArchiveInfo } from '../../repo/repo';
import { ArchiveStore } from './archive-store';

const SEG = 16 * 1024 * 1024;
const WAL = '000000010000000000000003';
const db = { id: 1, systemId: '7301234567890123456', pgVersion: 15, catalogVersion: 202209061, controlVersion: 1300 };
const info: ArchiveInfo = { version: 1, db, history: [db] };

/** A PostgreSQL 15 segment: a long page header (magic, system id, sizes) and compressible bytes after it. */
function segment(systemId = db.systemId): Buffer {
  const buf = Buffer.alloc(SEG);
  for (let o = 64; o < SEG; o += 4096) crypto.randomBytes(512).copy(buf, o);
  buf.writeUInt16LE(0xd110, 0);
  buf.writeUInt16LE(0x0002, 2);
  buf.writeUInt32LE(1, 4);
  buf.writeBigUInt64LE(3n * BigInt(SEG), 8);
  buf.writeBigUInt64LE(BigInt(systemId), 24);
  buf.writeUInt32LE(SEG, 32);
  buf.writeUInt32LE(8192, 36);
  return buf;
}

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

describe('ArchiveStore staged pushes (archive-push-stream) on posix storage', () => {
  let dir: string;
  let repo: Repo;
  let store: ArchiveStore;
  const walDir = (): string => path.join(dir, 'archive', 'main', '15-1', WAL.slice(0, 16));
  const stage = (seg: Buffer, offset: number, size: number, agentId = 'a1', data = zstdCompressBuffer(seg.subarray(offset, offset + size), 1)) =>
    store.stage(async () => info, { stanza: 'main', walName: WAL, agentId, offset, size, data });
  const pushRest = (seg: Buffer, staged: number, sha256 = sha(seg), agentId = 'a1') =>
    store.push(info, { stanza: 'main', walName: WAL, size: seg.length, sha256, compressType: 'zst', staged, agentId },
      Readable.from([zstdCompressBuffer(seg.subarray(staged), 1)]));

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openrds-stage-'));
    repo = new Repo(new PosixStorage({ path: dir }));
    // A push naming parts that never come waits 200 ms here, not a second.
    store = new ArchiveStore(repo, undefined, 200);
  });
  afterEach(async () => {
    // A stage a test leaves (the next segment's) is closed, as a stopping repo-server does.
    await store.stagesDrop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores the staged parts and the rest as the segment, and shows nothing before the push', async () => {
    const seg = segment();
    expect(await stage(seg, 0, 1 << 20)).toBe(1 << 20);
    expect(await stage(seg, 1 << 20, 3 << 20)).toBe(4 << 20);
    // Staged bytes are a temp file only: the archive does not know the segment yet.
    expect(await store.find('main', '15-1', WAL)).toEqual([]);
    expect(fs.readdirSync(walDir()).every((n) => n.includes('.tmp.'))).toBe(true);
    const r = await pushRest(seg, 4 << 20);
    expect(r.duplicate).toBe(false);
    expect(r.key).toBe(`archive/main/15-1/${WAL.slice(0, 16)}/${WAL}-${sha(seg)}.zst`);
    // The stored file is zstd frames that decompress to the segment; no temp file is left.
    expect(sha(zstdDecompressBuffer(fs.readFileSync(path.join(dir, r.key)), SEG))).toBe(sha(seg));
    expect(fs.readdirSync(walDir())).toEqual([path.basename(r.key)]);
  });

  it('a stopping repo-server drops its stages and takes no new one, even one begun as it stops: no temp file outlives it', async () => {
    const seg = segment();
    await stage(seg, 0, 1 << 20);
    // A stage begun before the server stops and made after (a call cut off by forceShutdown still runs).
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const late = store.stage(async () => { await gate; return info; },
      { stanza: 'main', walName: WAL, agentId: 'a2', offset: 0, size: 1 << 20, data: zstdCompressBuffer(seg.subarray(0, 1 << 20), 1) });
    late.catch(() => undefined);
    await new Promise((r) => setImmediate(r));
    await store.stagesDrop();
    release();
    await expect(late).rejects.toBeInstanceOf(ArchiveStageMissingError);
    await expect(stage(seg, 0, 1 << 20, 'a3')).rejects.toBeInstanceOf(ArchiveStageMissingError);
    expect(fs.existsSync(walDir()) ? fs.readdirSync(walDir()) : []).toEqual([]);
  });

  it('an object store holds stages in memory up to a bound: past it the stage is refused and dropped, and the agent pushes whole', async () => {
    // No temp files (as S3 and Azure): the parts stay in memory until the push.
    const storage = Object.assign(new PosixStorage({ path: dir }), { appendable: undefined });
    const mem = new ArchiveStore(new Repo(storage), 3.5 * (1 << 20));
    // Random content (1 MiB compresses to about 1 MiB) behind a valid segment header.
    const seg = crypto.randomBytes(SEG);
    segment().copy(seg, 0, 0, 64);
    const part = (agentId: string, offset: number) => mem.stage(async () => info,
      { stanza: 'main', walName: WAL, agentId, offset, size: 1 << 20, data: zstdCompressBuffer(seg.subarray(offset, offset + (1 << 20)), 1) });
    for (let i = 0; i < 3; i++) expect(await part('a1', i << 20)).toBe((i + 1) << 20);
    await expect(part('a1', 3 << 20)).rejects.toThrow(/staged WAL in memory/);
    // The refused stage is gone with its parts: another stage fits, and the push of a1 finds nothing to continue.
    expect(await part('a2', 0)).toBe(1 << 20);
    await expect(mem.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256: sha(seg), compressType: 'zst', staged: 3 << 20, agentId: 'a1' },
      Readable.from([zstdCompressBuffer(seg.subarray(3 << 20), 1)]))).rejects.toBeInstanceOf(ArchiveStageMissingError);
  });

  it('replaces what followed a part that is sent again, and the push may name an earlier staged end', async () => {
    const seg = segment();
    await stage(seg, 0, 1 << 20);
    await stage(seg, 1 << 20, 1 << 20);
    await stage(seg, 2 << 20, 1 << 20);
    // The agent sends the second part again: the third is gone.
    expect(await stage(seg, 1 << 20, 2 << 20)).toBe(3 << 20);
    // The push names only the first part (what the agent knew when it took the stage).
    const r = await pushRest(seg, 1 << 20);
    expect(sha(zstdDecompressBuffer(fs.readFileSync(path.join(dir, r.key)), SEG))).toBe(sha(seg));
  });

  it('a push that names a part still on its way waits for it, outside the locks, and stores the segment', async () => {
    const seg = segment();
    // Waits of a minute: only the part's arrival (or the stage's drop) ends them within the test.
    const slow = new ArchiveStore(repo, undefined, 60_000);
    const stageTo = (s: ArchiveStore, offset: number, size: number, data?: Buffer): Promise<number> =>
      s.stage(async () => info, { stanza: 'main', walName: WAL, agentId: 'a1', offset, size, data: data ?? zstdCompressBuffer(seg.subarray(offset, offset + size), 1) });
    const pushTo = (s: ArchiveStore, staged: number): Promise<{ duplicate: boolean; key: string }> =>
      s.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256: sha(seg), compressType: 'zst', staged, agentId: 'a1' },
        Readable.from([zstdCompressBuffer(seg.subarray(staged), 1)]));
    try {
      await stageTo(slow, 0, 1 << 20);
      let answered = false;
      const pushing = pushTo(slow, 3 << 20).finally(() => { answered = true; });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(answered).toBe(false);
      // The parts arrive after the push (each takes the stage's lock: the push does not hold it).
      await stageTo(slow, 1 << 20, 1 << 20);
      await stageTo(slow, 2 << 20, 1 << 20);
      const r = await pushing;
      expect(r.duplicate).toBe(false);
      expect(sha(zstdDecompressBuffer(fs.readFileSync(path.join(dir, r.key)), SEG))).toBe(sha(seg));
      expect(fs.readdirSync(walDir())).toEqual([path.basename(r.key)]);
      // A part refused while a push waits for it (damaged): the stage is dropped, and the push is
      // refused at once (the agent pushes the file whole), not after its wait.
      fs.rmSync(path.join(dir, 'archive'), { recursive: true, force: true });
      await stageTo(slow, 0, 1 << 20);
      const refused = pushTo(slow, 2 << 20);
      refused.catch(() => undefined);
      const packed = zstdCompressBuffer(seg.subarray(1 << 20, 2 << 20), 1);
      await expect(stageTo(slow, 1 << 20, 1 << 20, packed.subarray(0, packed.length - 100))).rejects.toBeInstanceOf(ChecksumError);
      await expect(refused).rejects.toBeInstanceOf(ArchiveStageMissingError);
      expect(fs.readdirSync(walDir())).toEqual([]);
    } finally {
      await slow.stagesDrop();
    }
  });

  it('a push that names a part that never comes is refused after its wait; the whole push then stores the segment', async () => {
    const seg = segment();
    await stage(seg, 0, 1 << 20);
    const t0 = Date.now();
    await expect(pushRest(seg, 2 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(fs.readdirSync(walDir())).toEqual([]);
    const r = await store.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256: sha(seg), compressType: 'zst', agentId: 'a1' },
      Readable.from([zstdCompressBuffer(seg, 1)]));
    expect(fs.readdirSync(walDir())).toEqual([path.basename(r.key)]);
    // No stage at all (a restarted repo-server): refused at once, with no wait.
    fs.rmSync(path.join(dir, 'archive'), { recursive: true, force: true });
    const slow = new ArchiveStore(repo, undefined, 60_000);
    await expect(slow.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256: sha(seg), compressType: 'zst', staged: 1 << 20, agentId: 'a1' },
      Readable.from([zstdCompressBuffer(seg.subarray(1 << 20), 1)]))).rejects.toBeInstanceOf(ArchiveStageMissingError);
  });

  it('refuses parts and pushes that do not continue a stage', async () => {
    const seg = segment();
    await expect(stage(seg, 1 << 20, 1 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
    await stage(seg, 0, 1 << 20);
    await expect(stage(seg, 5000, 1 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
    // Another agent has no stage of this segment, and a push cannot name more than is staged.
    await expect(pushRest(seg, 1 << 20, sha(seg), 'a2')).rejects.toBeInstanceOf(ArchiveStageMissingError);
    expect(await store.find('main', '15-1', WAL)).toEqual([]);
    await stage(seg, 0, 1 << 20);
    await expect(pushRest(seg, 2 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
    // That push dropped the stage: the agent pushes the segment whole.
    await expect(pushRest(seg, 1 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
    expect(await store.find('main', '15-1', WAL)).toEqual([]);
  });

  it('stores nothing when the whole does not match its sha256, and leaves no temp file', async () => {
    const seg = segment();
    await stage(seg, 0, 2 << 20);
    await expect(pushRest(seg, 2 << 20, sha(Buffer.from('other')))).rejects.toThrow(/checksum|sha256/i);
    expect(await store.find('main', '15-1', WAL)).toEqual([]);
    expect(fs.readdirSync(walDir())).toEqual([]);
  });

  it('refuses a damaged part, and a segment of another cluster at its first part', async () => {
    const seg = segment();
    const packed = zstdCompressBuffer(seg.subarray(0, 1 << 20), 1);
    const damaged = packed.subarray(0, packed.length - 100);
    await expect(stage(seg, 0, 1 << 20, 'a1', damaged)).rejects.toBeInstanceOf(ChecksumError);
    const other = segment('7309999999999999999');
    await expect(stage(other, 0, 1 << 20)).rejects.toBeInstanceOf(ArchiveMismatchError);
    expect(fs.readdirSync(walDir())).toEqual([]);
  });

  it('drops every stage and its temp file when the repo-server stops', async () => {
    const seg = segment();
    await stage(seg, 0, 1 << 20);
    await stage(seg, 0, 1 << 20, 'a2');
    expect(fs.readdirSync(walDir())).toHaveLength(2);
    await store.stagesDrop();
    expect(fs.readdirSync(walDir())).toEqual([]);
    await expect(pushRest(seg, 1 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
  });

  it('pushed whole after staging: the stage is dropped and the segment stored once', async () => {
    const seg = segment();
    await stage(seg, 0, 1 << 20);
    const r = await store.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256: sha(seg), compressType: 'zst', agentId: 'a1' },
      Readable.from([zstdCompressBuffer(seg, 1)]));
    expect(fs.readdirSync(walDir())).toEqual([path.basename(r.key)]);
    // The push of the rest that comes late is a duplicate of the stored segment, while the next
    // segment is being staged (its answer must not wait for the lock of the stage it looks for).
    const next = segment();
    next.writeBigUInt64LE(4n * BigInt(SEG), 8);
    await store.stage(async () => info, { stanza: 'main', walName: '000000010000000000000004', agentId: 'a1', offset: 0, size: 1 << 20, data: zstdCompressBuffer(next.subarray(0, 1 << 20), 1) });
    expect((await pushRest(seg, 1 << 20)).duplicate).toBe(true);
    expect(fs.readdirSync(walDir()).filter((n) => n.startsWith(WAL))).toEqual([path.basename(r.key)]);
    // Other bytes under the same name are refused: their stage (the segment is archived), then
    // their whole push.
    const other = segment();
    await expect(stage(other, 0, 1 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
    await expect(store.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256: sha(other), compressType: 'zst', agentId: 'a1' },
      Readable.from([zstdCompressBuffer(other, 1)]))).rejects.toBeInstanceOf(ArchiveDuplicateError);
    expect(fs.readdirSync(walDir()).filter((n) => n.startsWith(WAL))).toEqual([path.basename(r.key)]);
  });

  it('refuses the push of a stage once its repository is encrypted (the agent then pushes it whole, sealed), and keeps no temp file', async () => {
    const seg = segment();
    await stage(seg, 0, 1 << 20);
    const enabled = jest.spyOn(repo.cipher, 'enabled', 'get').mockReturnValue(true);
    try {
      await expect(pushRest(seg, 1 << 20)).rejects.toBeInstanceOf(ArchiveStageMissingError);
    } finally {
      enabled.mockRestore();
    }
    expect(await store.find('main', '15-1', WAL)).toEqual([]);
    expect(fs.readdirSync(walDir())).toEqual([]);
  });

  it('refuses to stage a segment already in the archive (its whole push overtook the stream): no temp file is left', async () => {
    const seg = segment();
    await store.push(info, { stanza: 'main', walName: WAL, size: seg.length, sha256: sha(seg), compressType: 'zst', agentId: 'a1' },
      Readable.from([zstdCompressBuffer(seg, 1)]));
    await expect(stage(seg, 0, 1 << 20)).rejects.toThrow(ArchiveStageMissingError);
    expect(fs.readdirSync(walDir()).filter((n) => n.includes('.tmp.'))).toEqual([]);
    // Nor does a stage begun while the push stores get past it: the stage waits for the segment's
    // lock, then finds it (the same agent: both locks in the same order, no deadlock).
    const whole = (): Promise<unknown> => store.push(info, { stanza: 'main', walName: WAL, size: seg.length, sha256: sha(seg), compressType: 'zst', agentId: 'a1' },
      Readable.from([zstdCompressBuffer(seg, 1)]));
    fs.rmSync(path.join(dir, 'archive'), { recursive: true, force: true });
    const pushing = whole();
    const staging = stage(seg, 0, 1 << 20);
    await pushing;
    await expect(staging).rejects.toThrow(ArchiveStageMissingError);
    expect(fs.readdirSync(walDir()).filter((n) => n.includes('.tmp.'))).toEqual([]);
    // A stage begun first is dropped by the whole push that follows.
    fs.rmSync(path.join(dir, 'archive'), { recursive: true, force: true });
    const first = stage(seg, 0, 1 << 20);
    await Promise.all([first, whole()]);
    expect(fs.readdirSync(walDir()).filter((n) => n.includes('.tmp.'))).toEqual([]);
  });

  it('tells a waiter for WAL when its segment is stored, not at the end of its wait', async () => {
    const seg = segment();
    const heard: string[] = [];
    // Waits of a minute: only the push of the awaited segment (or an abort) ends them within the test.
    const waiting = store.storedOrAfter('main', ['000000010000000000000009', WAL], 60_000).then(() => heard.push('segment'));
    const other = store.storedOrAfter('other', [WAL], 60_000).then(() => heard.push('other stanza'));
    const abort = new AbortController();
    const aborted = store.storedOrAfter('main', ['00000001000000000000000A'], 60_000, abort.signal).then(() => heard.push('aborted'));
    await store.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256: sha(seg), compressType: 'zst', agentId: 'a1' }, Readable.from([zstdCompressBuffer(seg, 1)]));
    await waiting;
    expect(heard).toEqual(['segment']);
    abort.abort();
    await aborted;
    expect(heard).toEqual(['segment', 'aborted']);
    // The waiter of another stanza heard nothing of 'main': a push of its own ends its wait.
    await store.push(info, { stanza: 'other', walName: WAL, size: SEG, sha256: sha(seg), compressType: 'zst', agentId: 'a1' }, Readable.from([zstdCompressBuffer(seg, 1)]));
    await other;
    expect(heard).toEqual(['segment', 'aborted', 'other stanza']);
  });

  it('stores a segment pushed whole through a worker that writes and checks it, and leaves nothing of a refused one', async () => {
    const seg = segment();
    const packed = zstdCompressBuffer(seg, 1);
    // As gRPC delivers them: chunks in buffers of their own.
    const chunks = (bytes: Buffer): Buffer[] => {
      const out: Buffer[] = [];
      for (let o = 0; o < bytes.length; o += 1 << 20) {
        const own = Buffer.allocUnsafeSlow(Math.min(1 << 20, bytes.length - o));
        bytes.copy(own, 0, o, o + own.length);
        out.push(own);
      }
      return out;
    };
    const pushWhole = (bytes: Buffer, sha256 = sha(seg)) =>
      store.push(info, { stanza: 'main', walName: WAL, size: SEG, sha256, compressType: 'zst' }, Readable.from(chunks(bytes)));
    // Damaged bytes, another checksum, another cluster: refused, and no file or temp file is left.
    const damaged = Buffer.from(packed.subarray(0, packed.length - 100));
    await expect(pushWhole(damaged)).rejects.toBeInstanceOf(ChecksumError);
    await expect(pushWhole(packed, sha(Buffer.from('other')))).rejects.toBeInstanceOf(ChecksumError);
    const other = segment('7301234567890123999');
    await expect(pushWhole(zstdCompressBuffer(other, 1), sha(other))).rejects.toBeInstanceOf(ArchiveMismatchError);
    expect(fs.existsSync(walDir()) ? fs.readdirSync(walDir()) : []).toEqual([]);
    const r = await pushWhole(packed);
    expect(r.duplicate).toBe(false);
    expect(fs.readFileSync(path.join(dir, r.key)).equals(packed)).toBe(true);
    expect(fs.readdirSync(walDir())).toEqual([path.basename(r.key)]);
    // The same again is a duplicate; different content under the name is refused, nothing overwritten.
    expect((await pushWhole(packed)).duplicate).toBe(true);
    await expect(pushWhole(zstdCompressBuffer(segment(), 1), sha(Buffer.from('x')))).rejects.toBeInstanceOf(ArchiveDuplicateError);
    expect(fs.readdirSync(walDir())).toEqual([path.basename(r.key)]);
  });
});
