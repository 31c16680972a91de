import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AssertError } from '../error';
import { compressBuffer, compressExtension, compressFilters, compressTypeOf, decompressBuffer, decompressFilters, isDecodeError } from './compress';
import { ZstdDataError } from './zstd';
import { ChunkFilter, LimitFilter, Sha256Filter, SizeFilter, sha256File } from './filter';

/** A Writable that keeps every chunk it receives, as received. */
function sinkCollect(chunks: Buffer[]): Writable {
  return new Writable({ write: (c: Buffer, _e, cb) => { chunks.push(c); cb(); } });
}

/** The buffer cut into pieces of the given sizes, cycling through them. */
function piecesOf(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('Sha256Filter and SizeFilter', () => {
  it('hash and count every byte like node crypto, and pass the bytes through unchanged', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const sha = new Sha256Filter(), size = new SizeFilter();
    const out: Buffer[] = [];
    await pipeline(Readable.from(piecesOf(data, [1000, 65536, 1])), sha.stream, size.stream, sinkCollect(out));
    expect(sha.result()).toBe(createHash('sha256').update(data).digest('hex'));
    expect(size.result()).toBe(data.length);
    expect(Buffer.concat(out).equals(data)).toBe(true);
  });

  it('report the empty hash and zero size for no bytes', async () => {
    const sha = new Sha256Filter(), size = new SizeFilter();
    await pipeline(Readable.from([]), sha.stream, size.stream, sinkCollect([]));
    expect(sha.result()).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(size.result()).toBe(0);
  });

  it('refuse to report a hash before the stream finished', () => {
    expect(() => new Sha256Filter().result()).toThrow(AssertError);
  });
});

describe('LimitFilter', () => {
  it('passes the first bytes up to the limit and reports what it dropped', async () => {
    const data = randomBytes(10000);
    const limit = new LimitFilter(4097);
    const out: Buffer[] = [];
    await pipeline(Readable.from(piecesOf(data, [4096, 1000])), limit.stream, sinkCollect(out));
    expect(Buffer.concat(out).equals(data.subarray(0, 4097))).toBe(true);
    expect(limit.result()).toEqual({ passed: 4097, dropped: 10000 - 4097 });
  });

  it('passes a shorter input whole', async () => {
    const limit = new LimitFilter(100);
    const out: Buffer[] = [];
    await pipeline(Readable.from([Buffer.from('abc')]), limit.stream, sinkCollect(out));
    expect(Buffer.concat(out).toString()).toBe('abc');
    expect(limit.result()).toEqual({ passed: 3, dropped: 0 });
  });

  it('passes nothing with a zero limit', async () => {
    const limit = new LimitFilter(0);
    const out: Buffer[] = [];
    await pipeline(Readable.from([Buffer.from('abc')]), limit.stream, sinkCollect(out));
    expect(out).toEqual([]);
  });
});

describe('ChunkFilter', () => {
  it('cuts large buffers and gathers small ones into chunks of at most the size, keeping the bytes', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 3);
    const out: Buffer[] = [];
    await pipeline(Readable.from(piecesOf(data, [3 * 1024 * 1024, 10, 700 * 1024, 1])), new ChunkFilter().stream, sinkCollect(out));
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(Math.max(...out.map((c) => c.length))).toBeLessThanOrEqual(1024 * 1024);
    // Gathering: every chunk but the last is full.
    expect(out.slice(0, -1).every((c) => c.length === 1024 * 1024)).toBe(true);
  });

  it('cuts a large buffer into views of it without copying', async () => {
    const data = randomBytes(2500);
    const out: Buffer[] = [];
    await pipeline(Readable.from([data]), new ChunkFilter({ size: 1000 }).stream, sinkCollect(out));
    expect(out.map((c) => c.length)).toEqual([1000, 1000, 500]);
    expect(out.every((c) => c.buffer === data.buffer)).toBe(true);
  });

  it('passes small buffers at once without coalescing', async () => {
    const out: Buffer[] = [];
    await pipeline(Readable.from([Buffer.from('ab'), Buffer.from('cdefg')]), new ChunkFilter({ size: 3, coalesce: false }).stream, sinkCollect(out));
    expect(out.map((c) => c.toString())).toEqual(['ab', 'cde', 'fg']);
  });
});

describe('compress helpers', () => {
  it('gives no filter for none and a zstd filter for zst, and names the extension', () => {
    expect(compressFilters('none', 3)).toEqual([]);
    expect(decompressFilters('none')).toEqual([]);
    expect(compressFilters('zst', 3).map((f) => f.name)).toEqual(['zstd-compress']);
    expect(decompressFilters('zst').map((f) => f.name)).toEqual(['zstd-decompress']);
    expect(compressFilters('gz', 6).map((f) => f.name)).toEqual(['gz-compress']);
    expect(compressExtension).toEqual({ none: '', zst: '.zst', lz4: '.lz4', gz: '.gz' });
    expect(compressTypeOf('000000010000000000000001-ab.zst')).toBe('zst');
    expect(compressTypeOf('pg_data/base/1/1259.gz')).toBe('gz');
    expect(compressTypeOf('pg_data/PG_VERSION')).toBe('none');
    expect(() => compressFilters('bz2' as 'zst', 3)).toThrow("unknown compress type 'bz2'");
    expect(() => compressFilters('gz', 12)).toThrow("invalid gz compress level '12'");
  });

  it('round-trips gz as a stream and as a whole buffer, and refuses damage or another size', async () => {
    const data = Buffer.from('gz rows '.repeat(5000));
    const parts: Buffer[] = [];
    await pipeline(Readable.from([data]), compressFilters('gz', 6)[0]!.stream, decompressFilters('gz')[0]!.stream,
      new Writable({ write: (c: Buffer, _e, cb) => { parts.push(c); cb(); } }));
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    const packed = compressBuffer('gz', data, 6);
    expect(packed.length).toBeLessThan(data.length / 10);
    expect(decompressBuffer('gz', packed, data.length).equals(data)).toBe(true);
    expect(decompressBuffer('zst', compressBuffer('zst', data, 3), data.length).equals(data)).toBe(true);
    expect(compressBuffer('none', data, 3)).toBe(data);
    expect(() => decompressBuffer('gz', packed, data.length - 1)).toThrow(ZstdDataError);
    const damaged = Buffer.from(packed);
    damaged[damaged.length - 6] ^= 0xff;
    expect(() => decompressBuffer('gz', damaged, data.length)).toThrow(ZstdDataError);
    let zlibError: unknown;
    await pipeline(Readable.from([damaged]), decompressFilters('gz')[0]!.stream, new Writable({ write: (_c, _e, cb) => cb() })).catch((e: unknown) => { zlibError = e; });
    expect(isDecodeError(zlibError)).toBe(true);
    expect(isDecodeError(Object.assign(new Error('disk'), { code: 'EIO' }))).toBe(false);
  });
});

describe('sha256File', () => {
  it('hashes a file on disk', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sha-'));
    try {
      const data = randomBytes(2 * 1024 * 1024 + 5);
      fs.writeFileSync(path.join(dir, 'f'), data);
      expect(await sha256File(path.join(dir, 'f'))).toEqual({ sha256: createHash('sha256').update(data).digest('hex'), size: data.length });
      await expect(sha256File(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
