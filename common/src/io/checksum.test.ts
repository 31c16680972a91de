import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BLAKE3_EMPTY, ChecksumFilter, SHA256_EMPTY, checksumEmpty, checksumIsEmpty, checksumOf, checksumTypeOf, checksumTypeParse, contentHashNew,
} from './checksum';
import { OptionInvalidError } from '../error';

describe('checksums of backup files', () => {
  it('computes BLAKE3 as its reference test vectors say, written blake3:<hex>', () => {
    // The BLAKE3 paper's and the reference implementation's values.
    expect(checksumOf('blake3', Buffer.alloc(0))).toBe('blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    expect(checksumOf('blake3', Buffer.from('hello world'))).toBe('blake3:d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24');
    expect(checksumOf('blake3', Buffer.from('abc'))).toBe('blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
    expect(BLAKE3_EMPTY).toBe(checksumOf('blake3', Buffer.alloc(0)));
  });

  it('computes sha256 as plain hex, as every checksum was before blake3', () => {
    expect(checksumOf('sha256', Buffer.from('abc'))).toBe(createHash('sha256').update('abc').digest('hex'));
    expect(SHA256_EMPTY).toBe(createHash('sha256').digest('hex'));
  });

  it('hashes a view of a buffer (not the buffer behind it) and in pieces the same as whole', () => {
    const big = Buffer.from('xxhello worldyy');
    expect(checksumOf('blake3', big.subarray(2, 13))).toBe(checksumOf('blake3', Buffer.from('hello world')));
    const data = Buffer.alloc(3 * 1024 * 1024 + 5, 9);
    for (const type of ['sha256', 'blake3'] as const) {
      const h = contentHashNew(type);
      for (let off = 0; off < data.length; off += 100_000) h.update(data.subarray(off, off + 100_000));
      expect(h.digest()).toBe(checksumOf(type, data));
    }
  });

  it('tells the type of a recorded value, the empty values, and refuses an unknown type', () => {
    expect(checksumTypeOf(SHA256_EMPTY)).toBe('sha256');
    expect(checksumTypeOf(BLAKE3_EMPTY)).toBe('blake3');
    expect(checksumEmpty('blake3')).toBe(BLAKE3_EMPTY);
    expect(checksumEmpty('sha256')).toBe(SHA256_EMPTY);
    expect([SHA256_EMPTY, BLAKE3_EMPTY, '', undefined].map(checksumIsEmpty)).toEqual([true, true, true, true]);
    expect(checksumIsEmpty(checksumOf('blake3', Buffer.from('x')))).toBe(false);
    expect(checksumTypeParse('blake3')).toBe('blake3');
    expect(() => checksumTypeParse('md5')).toThrow(OptionInvalidError);
  });

  it('observes the bytes of a stream as a filter, passing them on', async () => {
    const f = new ChecksumFilter('blake3');
    const out: Buffer[] = [];
    await pipeline(Readable.from([Buffer.from('hello '), Buffer.from('world')]), f.stream, new Writable({ write: (c: Buffer, _e, cb) => { out.push(c); cb(); } }));
    expect(Buffer.concat(out).toString()).toBe('hello world');
    expect(f.result()).toBe(checksumOf('blake3', Buffer.from('hello world')));
  });
});
