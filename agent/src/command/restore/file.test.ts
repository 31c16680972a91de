import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumError, compressFilters } from '@openrds/common';
import { SHA256_EMPTY } from '@openrds/common';
import { restoreFile } from './file';

async function zst(data: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline([Readable.from([data]), ...compressFilters('zst', 3).map((f) => f.stream),
    new Writable({ write: (c: Buffer, _e, cb) => { parts.push(c); cb(); } })]);
  return Buffer.concat(parts);
}

describe('restoreFile', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'restore-file-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the file with its mode and mtime, and settles (the descriptor is closed)', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const packed = await zst(data);
    const dest = path.join(dir, 'f');
    await restoreFile(() => Readable.from([packed]), {
      destination: dest, size: data.length, sha256: createHash('sha256').update(data).digest('hex'), mtime: 1700000000, mode: 0o640, compressType: 'zst',
    });
    expect(fs.readFileSync(dest).equals(data)).toBe(true);
    expect(fs.statSync(dest).mode & 0o777).toBe(0o640);
    expect(fs.statSync(dest).mtimeMs).toBe(1700000000 * 1000);
  });

  it('creates empty files without repo data', async () => {
    const dest = path.join(dir, 'empty');
    await restoreFile(undefined, { destination: dest, size: 0, sha256: SHA256_EMPTY, mtime: 1, mode: 0o600, compressType: 'zst' });
    expect(fs.statSync(dest).size).toBe(0);
  });

  it('fails naming the file when the bytes do not match the manifest', async () => {
    const data = Buffer.from('the manifest says otherwise');
    const dest = path.join(dir, 'base-1-1259');
    const err = await restoreFile(() => Readable.from([data]), {
      destination: dest, size: data.length, sha256: SHA256_EMPTY, mtime: 1, mode: 0o600, compressType: 'none',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect((err as Error).message).toContain(`restored file '${dest}' has size ${data.length}`);
  });

  it('reports damaged compressed data as corrupt repo data naming the file', async () => {
    const data = randomBytes(256 * 1024);
    const packed = await zst(data);
    packed[Math.floor(packed.length / 2)] = packed[Math.floor(packed.length / 2)]! ^ 0xff;
    const dest = path.join(dir, 'x');
    const err = await restoreFile(() => Readable.from([packed]), {
      destination: dest, size: data.length, sha256: createHash('sha256').update(data).digest('hex'), mtime: 1, mode: 0o600, compressType: 'zst',
    }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`'${dest}'`);
    expect(err).toBeInstanceOf(ChecksumError);
  });
});
