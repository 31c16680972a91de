import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { AssertError, ConfigError, FileMissingError, FileWriteError } from '../error';
import { FilterPool } from '../io/filter-pool';
import { WRITE_MAX } from '../io/write-max';
import { PosixStorage } from './posix';
import { storageRepoNew } from './repo-storage';
import type { StorageInfo } from './storage';

/** Every name under a directory, relative, sorted (files and directories). */
function tree(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

function writeEnd(w: Writable, data?: string): Promise<void> {
  return new Promise((resolve, reject) => { w.once('error', reject); w.end(data, () => resolve()); });
}

/** Resolves once the stream has closed: a failed write's cleanup is done by then. */
function closed(stream: Writable): Promise<void> {
  return new Promise((resolve) => { if (stream.closed) resolve(); else stream.once('close', () => resolve()); });
}

function waitFor(cond: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = (): void => {
      if (cond()) return resolve();
      if (Date.now() - started > 5000) return reject(new Error('condition not met within 5s'));
      setTimeout(poll, 2);
    };
    poll();
  });
}

/**
 * Records the fsyncs and renames done through fs.promises, in order: 'sync <path>' for every
 * FileHandle that sync() is called on and 'rename <to>', paths relative to `dir` ('' for dir
 * itself), temp suffixes shown as '.tmp'.
 */
async function fsyncSpy(dir: string): Promise<string[]> {
  const synced: string[] = [];
  const openPaths = new Map<number, string>();
  const relative = (p: unknown): string => path.relative(dir, String(p)).replace(/\.tmp\.[0-9a-f]{8}$/, '.tmp');
  const realRename = fs.promises.rename;
  jest.spyOn(fs.promises, 'rename').mockImplementation(async (from, to) => {
    await realRename(from, to);
    synced.push(`rename ${relative(to)}`);
  });
  const realOpen = fs.promises.open;
  jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
    const fh = await realOpen(...args);
    openPaths.set(fh.fd, relative(args[0]));
    return fh;
  });
  const probe = await realOpen(dir, 'r');
  const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
  await probe.close();
  const realSync = proto.sync;
  jest.spyOn(proto, 'sync').mockImplementation(function (this: fs.promises.FileHandle) {
    synced.push(`sync ${openPaths.get(this.fd) ?? `fd ${this.fd}`}`);
    return realSync.call(this);
  });
  return synced;
}

describe('PosixStorage', () => {
  let dir: string;
  let storage: PosixStorage;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'posix-'));
    storage = new PosixStorage({ path: dir });
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pathSync fsyncs every directory under a path (after writes that skipped their own), and a missing path is fine', async () => {
    await storage.put('set/a/b/one', 'x', { noSyncPath: true });
    await storage.put('set/c/two', 'y', { noSyncPath: true });
    const opened: string[] = [];
    const open = fs.promises.open;
    jest.spyOn(fs.promises, 'open').mockImplementation((p, flags, mode) => { if (flags === 'r') opened.push(path.relative(dir, String(p))); return open(p, flags, mode); });
    await storage.pathSync('set');
    expect(opened.sort()).toEqual(['set', 'set/a', 'set/a/b', 'set/c']);
    await expect(storage.pathSync('nothing/here')).resolves.toBeUndefined();
  });

  it('putMany stores a batch on a worker: every file at its key with its mode, directories made, no temp file left; a failure names the file', async () => {
    const pool = new FilterPool(1);
    const items = [
      { key: 'set/pg_data/base/1/1259', data: Buffer.from('a'.repeat(8192)) },
      { key: 'set/pg_data/base/1/1249', data: Buffer.alloc(0) },
      { key: 'set/pg_data/global/1262', data: Buffer.from('global') },
      { key: 'set/pg_data/base/5/2600', data: Buffer.from('five') },
    ];
    await storage.putMany!(items, { pool, noSyncPath: true });
    for (const { key, data } of items) {
      expect(fs.readFileSync(path.join(dir, key)).equals(data)).toBe(true);
      expect(fs.statSync(path.join(dir, key)).mode & 0o777).toBe(0o640);
    }
    const left = (d: string): string[] => fs.readdirSync(d, { recursive: true }).map(String).filter((n) => /\.tmp\./.test(n));
    expect(left(dir)).toEqual([]);
    // Written again: replaced whole.
    await storage.putMany!([{ key: 'set/pg_data/global/1262', data: Buffer.from('again') }], { pool });
    expect(fs.readFileSync(path.join(dir, 'set/pg_data/global/1262'), 'utf8')).toBe('again');
    // A key that cannot be written (a file where a directory should be): the error names it, files before it are stored.
    fs.writeFileSync(path.join(dir, 'set', 'blocker'), 'x');
    await expect(storage.putMany!([{ key: 'set/ok', data: Buffer.from('1') }, { key: 'set/blocker/under', data: Buffer.from('2') }], { pool }))
      .rejects.toThrow(/unable to write 'set\/blocker\/under'/);
    expect(fs.readFileSync(path.join(dir, 'set/ok'), 'utf8')).toBe('1');
    expect(left(dir)).toEqual([]);
  });

  it('putStaged writes under a temp name that listings skip, and commit or abort decides', async () => {
    const staged = await storage.putStaged!('archive/1/seg-a', Buffer.from('wal'));
    expect(await storage.list('archive/1')).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'archive/1'))).toEqual([expect.stringMatching(/^seg-a\.tmp\.[0-9a-f]{8}$/)]);
    await staged.commit();
    expect(await storage.list('archive/1')).toEqual(['seg-a']);
    expect(fs.readFileSync(path.join(dir, 'archive/1/seg-a'), 'utf8')).toBe('wal');
    const refused = await storage.putStaged!('archive/1/seg-b', Buffer.from('bad'));
    await refused.abort();
    expect(fs.readdirSync(path.join(dir, 'archive/1'))).toEqual(['seg-a']);
  });

  it('getMany reads small files on a worker, leaves larger ones to newRead, and names a missing one', async () => {
    const pool = new FilterPool(1);
    await storage.put('set/a', Buffer.from('alpha'));
    await storage.put('set/empty', Buffer.alloc(0));
    await storage.put('set/big', Buffer.alloc(5000, 1));
    const got = await storage.getMany!(['set/a', 'set/big', 'set/empty'], { pool, maxSize: 4096 });
    expect(got.map((g) => g?.toString())).toEqual(['alpha', undefined, '']);
    // Past the message's byte budget, files are left to newRead too.
    expect((await pool.readFiles([{ path: path.join(dir, 'set/a'), max: 10 }, { path: path.join(dir, 'set/a'), max: 10 }], 6)).map(String)).toEqual(['alpha', 'large']);
    await expect(storage.getMany!(['set/a', 'set/nothing'], { pool, maxSize: 4096 })).rejects.toThrow(/missing file 'set\/nothing'/);
  });

  describe('newWrite', () => {
    it('makes a write visible at its key, with its content, only once the stream finished', async () => {
      const w = storage.newWrite('a/b/c.txt');
      w.write('hello ');
      await waitFor(() => fs.existsSync(path.join(dir, 'a/b')) && fs.readdirSync(path.join(dir, 'a/b')).length > 0);
      expect(fs.existsSync(path.join(dir, 'a/b/c.txt'))).toBe(false);
      await writeEnd(w, 'world');
      expect(fs.readFileSync(path.join(dir, 'a/b/c.txt'), 'utf8')).toBe('hello world');
      expect(tree(dir)).toEqual(['a', 'a/b', 'a/b/c.txt']);
    });

    it('leaves neither the key nor a temp file when destroyed mid-way', async () => {
      const w = storage.newWrite('x/partial');
      w.write(Buffer.alloc(64 * 1024, 1));
      await waitFor(() => fs.existsSync(path.join(dir, 'x')) && fs.readdirSync(path.join(dir, 'x')).length === 1);
      w.destroy();
      await closed(w);
      expect(tree(path.join(dir, 'x'))).toEqual([]);
    });

    it('leaves nothing when destroyed before the temp file was even opened', async () => {
      const w = storage.newWrite('y/early');
      const errors: Error[] = [];
      w.on('error', (err) => errors.push(err));
      w.destroy(new Error('changed my mind'));
      await closed(w);
      expect(errors.map((e) => e.message)).toEqual(['changed my mind']);
      expect(fs.existsSync(path.join(dir, 'y')) ? tree(path.join(dir, 'y')) : []).toEqual([]);
    });

    it('leaves nothing when the pipeline fails mid-way, and rejects with the cause', async () => {
      let sent = 0;
      const source = new Readable({
        read() {
          if (sent++ < 3) this.push(Buffer.alloc(256 * 1024, 7));
          else this.destroy(new Error('network cut'));
        },
      });
      const w = storage.newWrite('z/partial');
      await expect(pipeline(source, w)).rejects.toThrow('network cut');
      // pipeline() rejects as soon as the source fails; the write's cleanup ends at its 'close'.
      await closed(w);
      expect(tree(path.join(dir, 'z'))).toEqual([]);
    });

    it('keeps the old content when a rewrite of the same key fails, and replaces it when one succeeds', async () => {
      await storage.put('k', 'old');
      const failing = new Readable({ read() { this.push('new but '); this.destroy(new Error('boom')); } });
      const w = storage.newWrite('k');
      await expect(pipeline(failing, w)).rejects.toThrow('boom');
      await closed(w);
      expect(fs.readFileSync(path.join(dir, 'k'), 'utf8')).toBe('old');
      await storage.put('k', 'new');
      expect(fs.readFileSync(path.join(dir, 'k'), 'utf8')).toBe('new');
      expect(tree(dir)).toEqual(['k']);
    });

    it('streams a large file through with backpressure and the exact bytes', async () => {
      const block = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < block.length; i += 4) block.writeUInt32LE(i, i);
      await pipeline(Readable.from((function* () { for (let i = 0; i < 24; i++) yield block; })()), storage.newWrite('big'));
      const st = fs.statSync(path.join(dir, 'big'));
      expect(st.size).toBe(24 * 1024 * 1024);
      const tail = Buffer.alloc(8);
      const fd = fs.openSync(path.join(dir, 'big'), 'r');
      fs.readSync(fd, tail, 0, 8, 23 * 1024 * 1024 + 1024);
      fs.closeSync(fd);
      expect(tail.readUInt32LE(0)).toBe(1024);
    });

    it('gives each write call WRITE_MAX bytes at most (large buffered writes are slow on some hosts), the bytes exact', async () => {
      const big = crypto.randomBytes(3 * WRITE_MAX + 12345);
      const small = crypto.randomBytes(1000);
      const sizes: number[] = [];
      const proto = Object.getPrototypeOf(await fs.promises.open(__filename, 'r').then(async (fh) => { await fh.close(); return fh; })) as { writev: (b: Buffer[]) => Promise<{ bytesWritten: number }> };
      const writev = proto.writev;
      jest.spyOn(proto, 'writev').mockImplementation(function (this: unknown, b: Buffer[]) {
        sizes.push(b.reduce((n, x) => n + x.length, 0));
        return writev.call(this, b);
      });
      const w = storage.newWrite('capped');
      // Two chunks at once (writev), one of them larger than WRITE_MAX.
      w.cork();
      w.write(small);
      w.write(big);
      process.nextTick(() => w.uncork());
      await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
      await finished(w);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(WRITE_MAX);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(small.length + big.length);
      expect(fs.readFileSync(path.join(dir, 'capped')).equals(Buffer.concat([small, big]))).toBe(true);
    });

    it('fsyncs the file before the rename and the directory after it, and new parent directories', async () => {
      const synced = await fsyncSpy(dir);
      await storage.put('d1/d2/f', 'x');
      // d1 is created in the base and d2 in d1, so both parents are synced before the file is written.
      expect(synced).toEqual(['sync ', 'sync d1', 'sync d1/d2/f.tmp', 'rename d1/d2/f', 'sync d1/d2']);
    });

    it('skips the fsyncs the caller opted out of', async () => {
      const synced = await fsyncSpy(dir);
      fs.mkdirSync(path.join(dir, 'p'));
      // Scratch data in a test: durability does not matter here.
      await storage.put('p/f', 'x', { noSyncFile: true, noSyncPath: true });
      expect(synced).toEqual(['rename p/f']);
      expect(fs.readFileSync(path.join(dir, 'p/f'), 'utf8')).toBe('x');
    });

    it('writes in place with noAtomic, and removes the partial file when it fails', async () => {
      const opened: string[] = [];
      const realOpen = fs.promises.open;
      jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
        opened.push(path.relative(dir, String(args[0])));
        return realOpen(...args);
      });
      // Test of the option itself.
      await storage.put('n', 'in place', { noAtomic: true });
      expect(opened).toContain('n');
      expect(fs.readFileSync(path.join(dir, 'n'), 'utf8')).toBe('in place');
      const failing = new Readable({ read() { this.push('part'); this.destroy(new Error('boom')); } });
      const w = storage.newWrite('m', { noAtomic: true });
      await expect(pipeline(failing, w)).rejects.toThrow('boom');
      await closed(w);
      expect(tree(dir)).toEqual(['n']);
    });

    it('sets the file mode exactly, whatever the umask', async () => {
      const old = process.umask(0o077);
      try {
        await storage.put('m1', 'x');
        await storage.put('m2', 'x', { mode: 0o600 });
      } finally {
        process.umask(old);
      }
      expect(fs.statSync(path.join(dir, 'm1')).mode & 0o777).toBe(0o640);
      expect(fs.statSync(path.join(dir, 'm2')).mode & 0o777).toBe(0o600);
    });

    it('reports a write that cannot open as FileWriteError naming the key', async () => {
      fs.writeFileSync(path.join(dir, 'file'), '');
      await expect(storage.put('file/below', 'x')).rejects.toThrow(FileWriteError);
      await expect(storage.put('file/below', 'x')).rejects.toThrow("unable to open 'file/below' for write: ");
    });

    it('lets concurrent writers of one key end with one complete file and no temp files', async () => {
      await Promise.all(Array.from({ length: 8 }, (_v, i) => storage.put('race/k', String(i).repeat(100000))));
      expect(tree(path.join(dir, 'race'))).toEqual(['k']);
      expect(fs.readFileSync(path.join(dir, 'race/k'), 'utf8')).toMatch(/^(\d)\1{99999}$/);
    });
  });

  describe('reads and listings', () => {
    it('reads whole files and ranges', async () => {
      await storage.put('dir/b', '0123456789');
      expect((await storage.get('dir/b')).toString()).toBe('0123456789');
      const parts: Buffer[] = [];
      for await (const c of await storage.newRead('dir/b', { offset: 2, limit: 3 })) parts.push(c as Buffer);
      expect(Buffer.concat(parts).toString()).toBe('234');
      const none: Buffer[] = [];
      for await (const c of await storage.newRead('dir/b', { limit: 0 })) none.push(c as Buffer);
      expect(none).toEqual([]);
    });

    it('reports missing files with FileMissingError naming the key', async () => {
      await expect(storage.newRead('dir/zz')).rejects.toThrow(FileMissingError);
      await expect(storage.get('dir/zz')).rejects.toThrow("unable to open missing file 'dir/zz' for read");
    });

    it('lists sorted names without temp files, filtered by an expression, and [] for a missing path', async () => {
      await storage.put('dir/b', 'b');
      await storage.put('dir/a', '');
      await storage.put('dir/sub/c', 'c');
      fs.writeFileSync(path.join(dir, 'dir', 'c.tmp.0011aabb'), 'in progress');
      expect(await storage.list('dir')).toEqual(['a', 'b', 'sub']);
      expect(await storage.list('dir', { expression: /^b$/ })).toEqual(['b']);
      expect(await storage.list('nope')).toEqual([]);
      expect(await storage.list('dir/b')).toEqual([]);
      expect(await storage.list('')).toEqual(['dir']);
      // The synchronous listing answers the same.
      for (const [d, opts] of [['dir', undefined], ['dir', { expression: /^b$/ }], ['nope', undefined], ['dir/b', undefined], ['', undefined]] as const) {
        expect(storage.listSync(d, opts)).toEqual(await storage.list(d, opts));
      }
    });

    it('lists a tree recursively, depth first in name order, names relative to the path', async () => {
      await storage.put('t/b/2', '22');
      await storage.put('t/a', '1');
      await storage.put('t/b/1', '');
      fs.writeFileSync(path.join(dir, 't', 'b', '3.tmp.0011aabb'), 'in progress');
      fs.symlinkSync('/somewhere', path.join(dir, 't', 'c'));
      const seen: Omit<StorageInfo, 'mtime'>[] = [];
      for await (const { mtime, ...rest } of storage.listRecursive('t')) {
        expect(Math.abs(mtime - Date.now() / 1000)).toBeLessThan(60);
        seen.push(rest);
      }
      expect(seen).toEqual([
        { name: 'a', type: 'file', size: 1 },
        { name: 'b', type: 'path', size: 0 },
        { name: 'b/1', type: 'file', size: 0 },
        { name: 'b/2', type: 'file', size: 2 },
        { name: 'c', type: 'link', size: 0 },
      ]);
      const missing: StorageInfo[] = [];
      for await (const i of storage.listRecursive('nope')) missing.push(i);
      expect(missing).toEqual([]);
    });

    it('gives info and existence of files, paths and links', async () => {
      await storage.put('i/f', '12345');
      fs.symlinkSync('f', path.join(dir, 'i', 'l'));
      expect(await storage.info('i/f')).toEqual({ name: 'f', type: 'file', size: 5, mtime: expect.any(Number) });
      expect(await storage.info('i')).toMatchObject({ name: 'i', type: 'path' });
      expect(await storage.info('i/l')).toMatchObject({ name: 'l', type: 'link' });
      expect(await storage.info('i/none')).toBeUndefined();
      expect(await storage.exists('i/f')).toBe(true);
      expect(await storage.exists('i')).toBe(false);
      expect(await storage.exists('i/none')).toBe(false);
    });
  });

  describe('remove and move', () => {
    it('removes files, missing ones quietly unless asked', async () => {
      await storage.put('r/f', 'x');
      await storage.remove('r/f');
      expect(fs.existsSync(path.join(dir, 'r/f'))).toBe(false);
      await storage.remove('r/f');
      await expect(storage.remove('r/f', { errorOnMissing: true })).rejects.toThrow(new FileMissingError("unable to remove missing file 'r/f'"));
    });

    it('removes paths: empty ones plainly, full ones only with recurse', async () => {
      await storage.put('p/q/f', 'x');
      await expect(storage.pathRemove('p/q')).rejects.toThrow("unable to remove path 'p/q': it is not empty");
      await storage.pathRemove('p', { recurse: true });
      expect(fs.existsSync(path.join(dir, 'p'))).toBe(false);
      await storage.pathRemove('p', { recurse: true });
      fs.mkdirSync(path.join(dir, 'e'));
      await storage.pathRemove('e');
      expect(fs.existsSync(path.join(dir, 'e'))).toBe(false);
      await expect(storage.pathRemove('', { recurse: true })).rejects.toThrow(AssertError);
    });

    it('moves files and paths durably, creating the destination parent', async () => {
      await storage.put('from/f', 'x');
      const synced = await fsyncSpy(dir);
      await storage.move('from/f', 'to/deep/f');
      expect(fs.readFileSync(path.join(dir, 'to/deep/f'), 'utf8')).toBe('x');
      expect(synced).toEqual(['sync ', 'sync to', 'rename to/deep/f', 'sync to/deep', 'sync from']);
      await storage.move('to', 'moved');
      expect(tree(path.join(dir, 'moved'))).toEqual(['deep', 'deep/f']);
      await expect(storage.move('none', 'x')).rejects.toThrow(FileMissingError);
    });
  });

  describe('keys', () => {
    it('refuses keys that could leave the repository', async () => {
      expect(() => storage.newWrite('../etc/passwd')).toThrow(AssertError);
      expect(() => storage.newWrite('/etc/passwd')).toThrow(AssertError);
      expect(() => storage.newWrite('a/../../b')).toThrow("storage key 'a/../../b' must be a relative path without '..'");
      expect(() => storage.newWrite('')).toThrow(AssertError);
      await expect(storage.get('../x')).rejects.toThrow(AssertError);
      await expect(storage.list('..')).rejects.toThrow(AssertError);
      expect(() => storage.listSync('..')).toThrow(AssertError);
    });

    it('needs an absolute repo path', () => {
      expect(() => new PosixStorage({ path: 'relative/repo' })).toThrow(ConfigError);
    });
  });
});

describe('storageRepoNew', () => {
  it('makes a posix or s3 driver, and refuses what it cannot make', () => {
    expect(storageRepoNew({ type: 'posix', path: '/tmp/repo' }).type).toBe('posix');
    expect(() => storageRepoNew({ type: 's3', path: '/repo' })).toThrow(ConfigError);
    expect(storageRepoNew({ type: 's3', path: '/repo', s3: { bucket: 'b', region: 'us-east-1', uriStyle: 'path', keyType: 'shared', key: 'k', keySecret: 's', verifyTls: true } }).type).toBe('s3');
    expect(() => storageRepoNew({ type: 'azure', path: '/repo' })).toThrow('an azure repository needs its repo1-azure-* options');
    expect(() => storageRepoNew({ type: 'floppy', path: '/repo' })).toThrow("invalid repo type 'floppy'");
  });
});
