import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Sha256Filter, SizeFilter, compressFilters, decompressFilters, sha256File } from './filter';

/** Mixed data: compressible text and random bytes, generated lazily. */
function* mixed(chunks: number, chunkSize = 1024 * 1024): Generator<Buffer> {
  for (let i = 0; i < chunks; i++) {
    yield i % 2 === 0 ? Buffer.from(`row ${i} `.repeat(chunkSize / 8).slice(0, chunkSize)) : randomBytes(chunkSize);
  }
}

function sink(collect?: Buffer[]): Writable {
  return new Writable({ write: (c: Buffer, _e, cb) => { collect?.push(c); cb(); } });
}

describe('io filters', () => {
  it('sha256 and size observe every byte and pass them through unchanged', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const sha = new Sha256Filter(), size = new SizeFilter();
    const out: Buffer[] = [];
    await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), sha.stream, size.stream, sink(out));
    expect(sha.result()).toBe(createHash('sha256').update(data).digest('hex'));
    expect(size.result()).toBe(data.length);
    expect(Buffer.concat(out).equals(data)).toBe(true);
  });

  it('round-trips 40 MB of mixed data through zstd with memory staying flat', async () => {
    const before = process.memoryUsage().rss;
    const inSha = new Sha256Filter(), outSha = new Sha256Filter(), packed = new SizeFilter();
    let peak = 0;
    await pipeline([Readable.from(mixed(40)), inSha.stream, ...compressFilters('zst', 3).map((f) => f.stream), packed.stream,
      ...decompressFilters('zst').map((f) => f.stream), outSha.stream,
      new Writable({ write: (_c, _e, cb) => { peak = Math.max(peak, process.memoryUsage().rss); cb(); } })]);
    expect(outSha.result()).toBe(inSha.result());
    expect(packed.result()).toBeLessThan(40 * 1024 * 1024);
    expect(peak - before).toBeLessThan(128 * 1024 * 1024);
  });

  it('writes real zstd frames that the zstd command line reads', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zstd-'));
    try {
      const text = Buffer.from('openrds '.repeat(100000));
      await pipeline([Readable.from([text]), ...compressFilters('zst', 1).map((f) => f.stream), fs.createWriteStream(path.join(dir, 'a.zst'))]);
      let zstdCli = true;
      try { execFileSync('zstd', ['--version']); } catch { zstdCli = false; }
      if (zstdCli) {
        execFileSync('zstd', ['-q', '-d', path.join(dir, 'a.zst'), '-o', path.join(dir, 'a')]);
        expect(fs.readFileSync(path.join(dir, 'a')).equals(text)).toBe(true);
      }
      const out: Buffer[] = [];
      await pipeline([fs.createReadStream(path.join(dir, 'a.zst')), ...decompressFilters('zst').map((f) => f.stream), sink(out)]);
      expect(Buffer.concat(out).equals(text)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails on damaged zstd data instead of returning garbage', async () => {
    const packed: Buffer[] = [];
    await pipeline([Readable.from([randomBytes(256 * 1024)]), ...compressFilters('zst', 3).map((f) => f.stream), sink(packed)]);
    const bad = Buffer.concat(packed);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    await expect(pipeline([Readable.from([bad]), ...decompressFilters('zst').map((f) => f.stream), sink()])).rejects.toThrow();
  });

  it('hashes a file with sha256File', async () => {
    const file = path.join(os.tmpdir(), `sha-${process.pid}`);
    fs.writeFileSync(file, 'abc');
    try {
      expect(await sha256File(file)).toEqual({ sha256: createHash('sha256').update('abc').digest('hex'), size: 3 });
    } finally {
      fs.rmSync(file);
    }
  });
});
