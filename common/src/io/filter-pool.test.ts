import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FilterPool, type PoolMode } from './filter-pool';
import { ZstdDataError, zstdDecompressBuffer } from './zstd';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function run(pool: FilterPool, mode: PoolMode, chunks: Buffer[]): Promise<{ out: Buffer; result: ReturnType<ReturnType<FilterPool['transform']>['result']> }> {
  const t = pool.transform(mode, 3);
  const parts: Buffer[] = [];
  await pipeline(Readable.from(chunks), t, new Writable({ write: (c: Buffer, _e, cb) => { parts.push(c); cb(); } }));
  return { out: Buffer.concat(parts), result: t.result() };
}

describe('FilterPool (worker threads)', () => {
  const pool = new FilterPool(2);
  afterAll(() => pool.close());
  // Text that compresses, random bytes that do not, in 1 MiB chunks: 6 MiB.
  const chunks = Array.from({ length: 6 }, (_, i) => (i % 2 ? randomBytes(1024 * 1024) : Buffer.from(`row ${i} `.repeat(1024 * 1024 / 8).slice(0, 1024 * 1024))));
  const data = Buffer.concat(chunks);

  it('compresses a whole buffer in one message, and checks a whole frame without sending its content back', async () => {
    const { result, out } = await pool.compressWhole(Buffer.from(data), 3);
    expect(zstdDecompressBuffer(out, data.length).equals(data)).toBe(true);
    expect(result).toEqual({ inSha256: sha(data), inSize: data.length, outSha256: sha(out), outSize: out.length });
    const check = await pool.zstdDigestWhole(out, 64);
    expect(check.result).toEqual({ inSha256: sha(out), inSize: out.length, outSha256: sha(data), outSize: data.length });
    expect(check.head.equals(data.subarray(0, 64))).toBe(true);
    // Damage: a truncated frame and a flipped byte are ZstdDataErrors, the pool keeps working.
    await expect(pool.zstdDigestWhole(out.subarray(0, out.length - 10), 64)).rejects.toThrow(ZstdDataError);
    const flipped = Buffer.from(out);
    flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
    await expect(pool.zstdDigestWhole(flipped, 64)).rejects.toThrow(ZstdDataError);
    await expect(pool.zstdDigestWhole(Buffer.alloc(0), 64)).rejects.toThrow('zstd data is empty');
    expect((await pool.zstdDigestWhole(out, 64)).result.outSize).toBe(data.length);
  });

  it('compresses into a frame the main-thread decompressor reads, hashing both sides', async () => {
    const { out, result } = await run(pool, 'compress', chunks);
    expect(zstdDecompressBuffer(out, data.length).equals(data)).toBe(true);
    expect(result).toEqual({ inSha256: sha(data), inSize: data.length, outSha256: sha(out), outSize: out.length });
  });

  it('decompresses and hashes, and several streams run at once in order', async () => {
    const packed = (await run(pool, 'compress', chunks)).out;
    const pieces = [packed.subarray(0, 1000), packed.subarray(1000, 500_000), packed.subarray(500_000)];
    const results = await Promise.all([0, 1, 2, 3].map(() => run(pool, 'decompress', pieces)));
    for (const r of results) {
      expect(r.out.equals(data)).toBe(true);
      expect(r.result.outSha256).toBe(sha(data));
      expect(r.result.inSize).toBe(packed.length);
    }
    const digest = await run(pool, 'digest', chunks);
    expect(digest.out.length).toBe(0);
    expect(digest.result.inSha256).toBe(sha(data));
    const hashed = await run(pool, 'hash', chunks);
    expect(hashed.out.equals(data)).toBe(true);
    expect(hashed.result.inSha256).toBe(sha(data));
  });

  it('holds the writer back while the reader is slow (memory stays bounded)', async () => {
    const t = pool.transform('compress', 1);
    let maxQueued = 0;
    const input = Array.from({ length: 24 }, () => randomBytes(1024 * 1024));
    await pipeline(Readable.from(input), t, new Writable({
      highWaterMark: 1,
      write: (_c: Buffer, _e, cb) => { maxQueued = Math.max(maxQueued, t.readableLength); setTimeout(cb, 5); },
    }));
    expect(t.result().inSize).toBe(24 * 1024 * 1024);
    // The readable side's high-water mark (1 MiB) plus what was in flight when it filled up.
    expect(maxQueued).toBeLessThanOrEqual(6 * 1024 * 1024);
  });

  it('fails damaged or truncated zstd with ZstdDataError, and the pool keeps working', async () => {
    const packed = (await run(pool, 'compress', chunks)).out;
    const damaged = Buffer.from(packed);
    damaged[Math.floor(damaged.length / 2)] ^= 0xff;
    await expect(run(pool, 'decompress', [damaged])).rejects.toBeInstanceOf(ZstdDataError);
    await expect(run(pool, 'decompress', [packed.subarray(0, packed.length - 10)])).rejects.toBeInstanceOf(ZstdDataError);
    await expect(run(pool, 'decompress', [])).rejects.toBeInstanceOf(ZstdDataError);
    expect((await run(pool, 'decompress', [packed])).out.equals(data)).toBe(true);
  });

  it('does not keep a process alive once idle (a stopping daemon exits)', () => {
    // The built module (tsc -b runs before jest), in a process of its own that must end by itself.
    const built = path.resolve(__dirname, '..', '..', 'dist', 'io', 'filter-pool.js');
    const script = `const { FilterPool } = require(${JSON.stringify(built)});
      const { Readable, Writable } = require('node:stream');
      const t = new FilterPool(1).transform('compress', 1);
      Readable.from([Buffer.alloc(1 << 20, 1)]).pipe(t).pipe(new Writable({ write: (c, e, cb) => cb() }))
        .on('finish', () => console.log('done ' + t.result().inSize));`;
    const started = Date.now();
    expect(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 }).trim()).toBe('done 1048576');
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
