import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AssertError, FileMissingError } from '../error';
import { PosixStorage } from './posix';

describe('PosixStorage', () => {
  let dir: string;
  let storage: PosixStorage;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'posix-'));
    storage = new PosixStorage({ path: dir });
  });
  afterEach(() => { jest.restoreAllMocks(); fs.rmSync(dir, { recursive: true, force: true }); });

  it('makes a write visible, with its content, only once the stream finished', async () => {
    const w = storage.newWrite('a/b/c.txt');
    w.write('hello ');
    await new Promise((r) => setTimeout(r, 20));
    expect(fs.existsSync(path.join(dir, 'a/b/c.txt'))).toBe(false);
    await new Promise<void>((resolve, reject) => w.end('world', () => resolve()).on('error', reject));
    expect(fs.readFileSync(path.join(dir, 'a/b/c.txt'), 'utf8')).toBe('hello world');
    expect(fs.readdirSync(path.join(dir, 'a/b'))).toEqual(['c.txt']);
  });

  it('leaves neither the file nor a temp file when the pipeline fails mid-way', async () => {
    const source = new Readable({ read() { this.push(Buffer.alloc(1024)); this.destroy(new Error('network cut')); } });
    await expect(pipeline(source, storage.newWrite('x/partial'))).rejects.toThrow('network cut');
    await new Promise((r) => setTimeout(r, 20));
    expect(fs.readdirSync(path.join(dir, 'x'))).toEqual([]);
  });

  it('keeps the old content when a rewrite of the same key fails', async () => {
    await storage.put('k', 'old');
    const source = new Readable({ read() { this.destroy(new Error('boom')); } });
    await expect(pipeline(source, storage.newWrite('k'))).rejects.toThrow('boom');
    expect((await storage.get('k')).toString()).toBe('old');
  });

  it('fsyncs the file and its directory before the write counts as done', async () => {
    const calls: string[] = [];
    const realOpen = fs.promises.open;
    jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
      const fh = await realOpen(...args);
      const realSync = fh.sync.bind(fh);
      fh.sync = async () => { calls.push(`sync ${path.relative(dir, String(args[0])).replace(/\.tmp\.[0-9a-f]+$/, '.tmp')}`); return realSync(); };
      return fh;
    });
    await storage.put('d/f', 'x');
    expect(calls).toContain('sync d/f.tmp');
    expect(calls).toContain('sync d');
    expect(calls.indexOf('sync d/f.tmp')).toBeLessThan(calls.lastIndexOf('sync d'));
  });

  it('reads ranges, lists sorted names without temp files, and reports missing files', async () => {
    await storage.put('dir/b', '0123456789');
    await storage.put('dir/a', '');
    fs.writeFileSync(path.join(dir, 'dir', 'c.tmp.0011aabb'), 'in progress');
    const parts: Buffer[] = [];
    for await (const c of await storage.newRead('dir/b', { offset: 2, limit: 3 })) parts.push(c as Buffer);
    expect(Buffer.concat(parts).toString()).toBe('234');
    expect(await storage.list('dir')).toEqual(['a', 'b']);
    expect(await storage.list('dir', { expression: /^b$/ })).toEqual(['b']);
    expect(await storage.list('nope')).toEqual([]);
    await expect(storage.newRead('dir/zz')).rejects.toThrow(FileMissingError);
    await expect(storage.get('dir/zz')).rejects.toThrow("unable to open missing file 'dir/zz' for read");
    expect(await storage.exists('dir/b')).toBe(true);
    expect(await storage.info('dir/b')).toEqual(expect.objectContaining({ type: 'file', size: 10 }));
    await storage.remove('dir/b');
    expect(await storage.exists('dir/b')).toBe(false);
    await expect(storage.remove('dir/b', { errorOnMissing: true })).rejects.toThrow(FileMissingError);
    await storage.pathRemove('dir', { recurse: true });
    expect(fs.existsSync(path.join(dir, 'dir'))).toBe(false);
  });

  it('refuses keys that could leave the repository', () => {
    expect(() => storage.newWrite('../etc/passwd')).toThrow(AssertError);
    expect(() => storage.newWrite('/etc/passwd')).toThrow(AssertError);
  });
});
