import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AssertError, CryptoError } from '../error';
import type { IoFilter } from './filter';

/**
 * The repository's encrypted object format: chunked AES-256-GCM, streaming, authenticated.
 *
 *   header  = magic "ORDSAEAD" | version (1 byte) | key id length (1 byte) | key id (utf8)
 *             | chunk size (u32 BE, plaintext bytes per chunk) | nonce prefix (7 random bytes)
 *   chunk i = ciphertext of up to `chunk size` plaintext bytes | 16-byte GCM tag
 *
 * Chunk i's nonce is prefix | i (u32 BE) | final flag (1 on the last chunk, 0 otherwise); the
 * whole header is the additional authenticated data of every chunk. Every chunk but the last is
 * exactly `chunk size` long, and the last one (possibly empty) carries the final flag, so a
 * truncated object (its new last chunk was not sealed as final), an object with bytes appended
 * (its sealed final chunk is no longer last), swapped chunks (counter) and an edited header (AAD)
 * all fail authentication. Plaintext is released chunk by chunk only after its tag checked: the
 * readers behind (decompress, sha256, the file being restored) must still treat a stream error as
 * fatal, which they do.
 */
export const CIPHER_MAGIC = Buffer.from('ORDSAEAD', 'latin1');
const CIPHER_VERSION = 1;
const NONCE_PREFIX_SIZE = 7;
const TAG_SIZE = 16;
export const CIPHER_CHUNK_SIZE = 64 * 1024;
const KEY_SIZE = 32;
/** The longest header: magic, version, id length, 255-byte id, chunk size, nonce prefix. */
export const CIPHER_HEADER_MAX = CIPHER_MAGIC.length + 2 + 255 + 4 + NONCE_PREFIX_SIZE;

export type CipherType = 'none' | 'aes-256-gcm';
export const CIPHER_TYPES: readonly CipherType[] = ['none', 'aes-256-gcm'];

/** Finds a data key by the id an object names. Throws CryptoError when it is not available. */
export type CipherKeyLookup = (keyId: string) => Buffer;

/** The data key an encryptor uses, and the id written into every object it makes. */
export interface CipherDataKey {
  id: string;
  key: Buffer;
}

function keyCheck(key: Buffer, id: string): void {
  if (key.length !== KEY_SIZE) throw new AssertError(`cipher key '${id}' is ${key.length} bytes, not ${KEY_SIZE}`);
}

function headerMake(keyId: string, chunkSize: number): Buffer {
  const id = Buffer.from(keyId, 'utf8');
  if (id.length === 0 || id.length > 255) throw new AssertError(`cipher key id '${keyId}' must be 1 to 255 bytes`);
  const out = Buffer.alloc(CIPHER_MAGIC.length + 2 + id.length + 4 + NONCE_PREFIX_SIZE);
  let o = CIPHER_MAGIC.copy(out, 0);
  out[o++] = CIPHER_VERSION;
  out[o++] = id.length;
  o += id.copy(out, o);
  out.writeUInt32BE(chunkSize, o);
  o += 4;
  randomBytes(NONCE_PREFIX_SIZE).copy(out, o);
  return out;
}

interface ParsedHeader {
  header: Buffer;
  keyId: string;
  chunkSize: number;
  noncePrefix: Buffer;
}

/**
 * Parses a header at the start of `data`: undefined while more bytes are needed. Throws
 * CryptoError for bytes that are not an encrypted object of ours.
 */
function headerParse(data: Buffer, what: string): ParsedHeader | undefined {
  const magicLen = Math.min(data.length, CIPHER_MAGIC.length);
  if (!data.subarray(0, magicLen).equals(CIPHER_MAGIC.subarray(0, magicLen))) {
    throw new CryptoError(`${what} is not encrypted (or its header is damaged)`,
      { hint: 'the repository is configured with repo1-cipher-type=aes-256-gcm: a plaintext object there was written without encryption or was replaced' });
  }
  if (data.length < CIPHER_MAGIC.length + 2) return undefined;
  const version = data[CIPHER_MAGIC.length]!;
  if (version !== CIPHER_VERSION) throw new CryptoError(`${what} has encryption format version ${version}, this build reads version ${CIPHER_VERSION}`);
  const idLen = data[CIPHER_MAGIC.length + 1]!;
  const total = CIPHER_MAGIC.length + 2 + idLen + 4 + NONCE_PREFIX_SIZE;
  if (data.length < total) return undefined;
  const idStart = CIPHER_MAGIC.length + 2;
  const chunkSize = data.readUInt32BE(idStart + idLen);
  if (chunkSize < 1 || chunkSize > 16 * 1024 * 1024) throw new CryptoError(`${what} has an invalid encryption chunk size ${chunkSize}`);
  return {
    header: Buffer.from(data.subarray(0, total)),
    keyId: data.subarray(idStart, idStart + idLen).toString('utf8'),
    chunkSize,
    noncePrefix: Buffer.from(data.subarray(idStart + idLen + 4, total)),
  };
}

/** The key id an encrypted object names, from its first bytes; undefined when they are too few. */
export function cipherKeyIdOf(data: Buffer, what = 'object'): string | undefined {
  return headerParse(data, what)?.keyId;
}

/** True when the bytes start like an encrypted object (at least the magic). */
export function cipherIsEncrypted(data: Buffer): boolean {
  return data.length >= CIPHER_MAGIC.length && data.subarray(0, CIPHER_MAGIC.length).equals(CIPHER_MAGIC);
}

function nonceOf(prefix: Buffer, index: number, final: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0);
  nonce.writeUInt32BE(index, NONCE_PREFIX_SIZE);
  nonce[11] = final ? 1 : 0;
  return nonce;
}

function sealChunk(key: Buffer, h: { header: Buffer; noncePrefix: Buffer }, index: number, final: boolean, plain: Buffer): Buffer[] {
  const c = createCipheriv('aes-256-gcm', key, nonceOf(h.noncePrefix, index, final));
  c.setAAD(h.header);
  const body = c.update(plain);
  c.final();
  return [body, c.getAuthTag()];
}

function openChunk(key: Buffer, h: ParsedHeader, index: number, final: boolean, sealed: Buffer, what: string): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, nonceOf(h.noncePrefix, index, final));
  d.setAAD(h.header);
  d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const plain = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    d.final();
  } catch {
    throw new CryptoError(`${what} failed authentication at chunk ${index}${final ? ' (the last one)' : ''}: it was modified, truncated or extended, or key '${h.keyId}' is not the one it was written with`,
      { hint: 'the repository copy is damaged or was tampered with: run verify, and restore from another backup set (--set)' });
  }
  return plain;
}

/** Encrypts a whole buffer (small files, info files). */
export function encryptBuffer(key: CipherDataKey, data: Buffer, chunkSize = CIPHER_CHUNK_SIZE): Buffer {
  keyCheck(key.key, key.id);
  const header = headerMake(key.id, chunkSize);
  const h = { header, noncePrefix: header.subarray(header.length - NONCE_PREFIX_SIZE) };
  const parts: Buffer[] = [header];
  let index = 0, offset = 0;
  // Non-final chunks while more than a chunk remains; the rest (possibly nothing) is final.
  while (data.length - offset > chunkSize) {
    parts.push(...sealChunk(key.key, h, index++, false, data.subarray(offset, offset + chunkSize)));
    offset += chunkSize;
  }
  parts.push(...sealChunk(key.key, h, index, true, data.subarray(offset)));
  return Buffer.concat(parts);
}

/** Decrypts a whole buffer; CryptoError on any damage or a missing key. */
export function decryptBuffer(keys: CipherKeyLookup, data: Buffer, what = 'object'): Buffer {
  const h = headerParse(data, what);
  if (!h) throw new CryptoError(`${what} is truncated inside its encryption header`);
  const key = keys(h.keyId);
  keyCheck(key, h.keyId);
  const sealedSize = h.chunkSize + TAG_SIZE;
  const parts: Buffer[] = [];
  let offset = h.header.length, index = 0;
  while (data.length - offset > sealedSize) {
    parts.push(openChunk(key, h, index++, false, data.subarray(offset, offset + sealedSize), what));
    offset += sealedSize;
  }
  if (data.length - offset < TAG_SIZE) throw new CryptoError(`${what} is truncated: its last encrypted chunk is incomplete`);
  parts.push(openChunk(key, h, index, true, data.subarray(offset), what));
  return Buffer.concat(parts);
}

/** Streaming encryption: plaintext in, an encrypted object out. */
export class EncryptTransform extends Transform {
  private readonly sealing: { header: Buffer; noncePrefix: Buffer };
  private pending: Buffer[] = [];
  private pendingSize = 0;
  private index = 0;

  constructor(private readonly key: CipherDataKey, private readonly chunkSize = CIPHER_CHUNK_SIZE) {
    super();
    keyCheck(key.key, key.id);
    const header = headerMake(key.id, chunkSize);
    this.sealing = { header, noncePrefix: header.subarray(header.length - NONCE_PREFIX_SIZE) };
    this.push(header);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingSize += chunk.length;
    if (this.pendingSize > this.chunkSize) {
      let data = Buffer.concat(this.pending, this.pendingSize);
      let offset = 0;
      while (data.length - offset > this.chunkSize) {
        for (const b of sealChunk(this.key.key, this.sealing, this.index++, false, data.subarray(offset, offset + this.chunkSize))) this.push(b);
        offset += this.chunkSize;
      }
      data = data.subarray(offset);
      this.pending = data.length > 0 ? [data] : [];
      this.pendingSize = data.length;
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    for (const b of sealChunk(this.key.key, this.sealing, this.index, true, Buffer.concat(this.pending, this.pendingSize))) this.push(b);
    this.pending = [];
    cb();
  }
}

/** Streaming decryption: an encrypted object in, plaintext out (each chunk after its tag checked). */
export class DecryptTransform extends Transform {
  private head?: ParsedHeader;
  private key?: Buffer;
  private pending: Buffer[] = [];
  private pendingSize = 0;
  private index = 0;

  constructor(private readonly keys: CipherKeyLookup, private readonly what = 'object') {
    super();
  }

  /** The key id the object named (after its header was read). */
  keyId(): string | undefined {
    return this.head?.keyId;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.pending.push(chunk);
      this.pendingSize += chunk.length;
      let data = Buffer.concat(this.pending, this.pendingSize);
      if (!this.head) {
        const h = headerParse(data, this.what);
        if (!h) { this.pending = [data]; return cb(); }
        this.head = h;
        this.key = this.keys(h.keyId);
        keyCheck(this.key, h.keyId);
        data = data.subarray(h.header.length);
      }
      const sealedSize = this.head.chunkSize + TAG_SIZE;
      let offset = 0;
      // A chunk is known not to be the last only once more bytes follow it.
      while (data.length - offset > sealedSize) {
        this.push(openChunk(this.key!, this.head, this.index++, false, data.subarray(offset, offset + sealedSize), this.what));
        offset += sealedSize;
      }
      data = data.subarray(offset);
      this.pending = data.length > 0 ? [data] : [];
      this.pendingSize = data.length;
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (!this.head) throw new CryptoError(`${this.what} is ${this.pendingSize === 0 ? 'empty' : 'truncated inside its encryption header'}`);
      if (this.pendingSize < TAG_SIZE) throw new CryptoError(`${this.what} is truncated: its last encrypted chunk is incomplete`);
      this.push(openChunk(this.key!, this.head, this.index, true, Buffer.concat(this.pending, this.pendingSize), this.what));
      this.pending = [];
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

class CipherFilter implements IoFilter<void> {
  constructor(readonly name: string, readonly stream: Transform) {}
  result(): void { return undefined; }
}

/** The filter that encrypts with `key`, or none without one. */
export function encryptFilters(key: CipherDataKey | undefined): IoFilter[] {
  return key ? [new CipherFilter('encrypt', new EncryptTransform(key))] : [];
}

/** The filter that decrypts with keys found by id, or none without a lookup (plain repo). */
export function decryptFilters(keys: CipherKeyLookup | undefined, what?: string): IoFilter[] {
  return keys ? [new CipherFilter('decrypt', new DecryptTransform(keys, what))] : [];
}

/** A lookup over a fixed set of keys (the keys a job brought), naming what is missing. */
export function cipherKeyLookup(keys: readonly CipherDataKey[], where: string): CipherKeyLookup {
  const map = new Map(keys.map((k) => [k.id, k.key]));
  return (id) => {
    const key = map.get(id);
    if (!key) {
      throw new CryptoError(`encryption key '${id}' is not available to ${where}`,
        { hint: 'the repository passphrase (repo1-cipher-pass) must open the key version that wrote this data: see openrds-admin key list' });
    }
    return key;
  };
}
