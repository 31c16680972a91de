import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CryptoError } from '../error';
import {
  CIPHER_MAGIC, DecryptTransform, EncryptTransform, cipherIsEncrypted, cipherKeyIdOf, cipherKeyLookup, decryptBuffer, encryptBuffer,
} from './cipher';

const key = { id: 'backup-20261124-101010F', key: randomBytes(32) };
const other = { id: 'archive-1', key: randomBytes(32) };
const keys = cipherKeyLookup([key, other], 'the test');

async function streamThrough(t: NodeJS.ReadWriteStream, parts: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), t, new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
  return Buffer.concat(out);
}

describe('encrypted object format', () => {
  it.each([0, 1, 100, 4096, 4097, 8192, 3 * 4096 + 5])('round trips %i bytes, buffer and stream, in any split', async (n) => {
    const plain = randomBytes(n);
    const sealed = encryptBuffer(key, plain, 4096);
    expect(cipherIsEncrypted(sealed)).toBe(true);
    expect(cipherKeyIdOf(sealed)).toBe(key.id);
    expect(decryptBuffer(keys, sealed)).toEqual(plain);
    // The stream writer and reader agree with the buffer ones, whatever the chunking.
    const streamed = await streamThrough(new EncryptTransform(key, 4096), [plain.subarray(0, 7), plain.subarray(7, 5000), plain.subarray(5000)]);
    expect(decryptBuffer(keys, streamed)).toEqual(plain);
    const pieces: Buffer[] = [];
    for (let o = 0; o < sealed.length; o += 1000) pieces.push(sealed.subarray(o, o + 1000));
    expect(await streamThrough(new DecryptTransform(keys), pieces)).toEqual(plain);
  });

  it('never holds the plaintext (a marker does not appear in the sealed bytes)', () => {
    const marker = Buffer.from('OPENRDS-MARKER-7f3a');
    const sealed = encryptBuffer(key, Buffer.concat([marker, randomBytes(10), marker]));
    expect(sealed.includes(marker)).toBe(false);
    // Two encryptions of the same data differ (random nonce prefix).
    expect(encryptBuffer(key, marker).equals(encryptBuffer(key, marker))).toBe(false);
  });

  const plain = randomBytes(3 * 4096 + 100);
  const sealed = encryptBuffer(key, plain, 4096);
  const headerSize = CIPHER_MAGIC.length + 2 + key.id.length + 4 + 7;
  const sealedChunk = 4096 + 16;

  it.each([
    ['a flipped byte in a chunk', (b: Buffer) => { const c = Buffer.from(b); c[headerSize + 10]! ^= 0x01; return c; }, /failed authentication at chunk 0/],
    ['a flipped byte in the header (nonce prefix)', (b: Buffer) => { const c = Buffer.from(b); c[headerSize - 1]! ^= 0x80; return c; }, /failed authentication/],
    ['truncation at a chunk boundary', (b: Buffer) => b.subarray(0, headerSize + 2 * sealedChunk), /failed authentication at chunk 1 \(the last one\)/],
    ['truncation inside the last tag', (b: Buffer) => b.subarray(0, b.length - 3), /failed authentication/],
    ['bytes appended', (b: Buffer) => Buffer.concat([b, Buffer.alloc(20)]), /failed authentication at chunk 3/],
    ['two chunks swapped', (b: Buffer) => Buffer.concat([b.subarray(0, headerSize), b.subarray(headerSize + sealedChunk, headerSize + 2 * sealedChunk),
      b.subarray(headerSize, headerSize + sealedChunk), b.subarray(headerSize + 2 * sealedChunk)]), /failed authentication at chunk 0/],
    ['a header only', (b: Buffer) => b.subarray(0, headerSize), /truncated/],
    ['plaintext', () => Buffer.from('just some text'), /is not encrypted/],
  ])('%s fails with a CryptoError, buffer and stream', async (_name, damage, message) => {
    const bad = damage(sealed);
    expect(() => decryptBuffer(keys, bad, "file 'x'")).toThrow(CryptoError);
    expect(() => decryptBuffer(keys, bad, "file 'x'")).toThrow(message);
    await expect(streamThrough(new DecryptTransform(keys, "file 'x'"), [bad])).rejects.toThrow(message);
  });

  it('refuses a wrong key and names a missing one', async () => {
    const wrong = cipherKeyLookup([{ id: key.id, key: randomBytes(32) }], 'the test');
    expect(() => decryptBuffer(wrong, sealed)).toThrow(/failed authentication at chunk 0.*key 'backup-20261124-101010F'/);
    const none = cipherKeyLookup([other], 'the agent');
    expect(() => decryptBuffer(none, sealed)).toThrow("encryption key 'backup-20261124-101010F' is not available to the agent");
    await expect(streamThrough(new DecryptTransform(none), [sealed])).rejects.toThrow(CryptoError);
  });

  it('streams with bounded buffering (a 20 MB object through small pieces)', async () => {
    const big = randomBytes(20 * 1024 * 1024);
    const pieces: Buffer[] = [];
    for (let o = 0; o < big.length; o += 100_000) pieces.push(big.subarray(o, o + 100_000));
    const enc = new EncryptTransform(key);
    const out = await streamThrough(enc, pieces);
    expect(out.length).toBe(big.length + Math.ceil(big.length / (64 * 1024)) * 16 + headerSize);
    expect((await streamThrough(new DecryptTransform(keys), [out])).equals(big)).toBe(true);
  });
});
