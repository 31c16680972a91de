import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CIPHER_HEADER_MAX, CryptoError, cipherIsEncrypted, cipherKeyIdOf, decryptBuffer, decryptFilters, encryptBuffer,
  type CipherDataKey, type CipherKeyLookup, type CipherType, type IoFilter, type Storage, type StorageInfo, type StorageListOptions,
  type StorageReadOptions, type StorageWriteOptions,
} from '@openrds/common';
import { Keyring } from './keyring';

/**
 * A repository's encryption (repoN-cipher-type, repoN-cipher-pass): the key file of each stanza,
 * opened once with the passphrase and kept in memory. Data files are encrypted by the agent with
 * the keys a job brings; info files and manifests by the repo-server (CipherMetaStorage).
 */
export class RepoCipher {
  private readonly rings = new Map<string, Promise<Keyring>>();

  constructor(private readonly storage: Storage, readonly type: CipherType, private readonly pass: string | undefined, readonly repoKey = 1) {
    if (type !== 'none' && !pass) {
      throw new CryptoError(`repo${repoKey}-cipher-type=aes-256-gcm needs repo${repoKey}-cipher-pass`,
        { hint: `set repo${repoKey}-cipher-pass in a 0600 configuration file of the repo-server or as OPENRDS_REPO${repoKey}_CIPHER_PASS (never on the command line)` });
    }
  }

  private get passOption(): string { return `repo${this.repoKey}-cipher-pass`; }

  get enabled(): boolean { return this.type !== 'none'; }

  /** The opened key file of a stanza (cached); CryptoError when the repository is not encrypted or the stanza has none. */
  async ring(stanza: string): Promise<Keyring> {
    if (!this.enabled) throw new CryptoError(`repo${this.repoKey} is not encrypted (repo${this.repoKey}-cipher-type=none)`);
    let ring = this.rings.get(stanza);
    if (!ring) {
      ring = (async () => {
        if (!(await Keyring.exists(this.storage, stanza))) {
          throw new CryptoError(`stanza '${stanza}' has no key file: it was created without encryption`,
            { hint: `encryption is chosen when a stanza is created: keep repo${this.repoKey}-cipher-type=none for it, or create the stanza in a new, encrypted repository` });
        }
        return Keyring.open(this.storage, stanza, this.pass!, this.passOption);
      })();
      this.rings.set(stanza, ring);
      ring.catch(() => this.rings.delete(stanza));
    }
    return ring;
  }

  /** stanza-create: makes the key file when the repository is encrypted. */
  async stanzaCreate(stanza: string): Promise<void> {
    if (!this.enabled) return;
    if (await Keyring.exists(this.storage, stanza)) {
      await this.ring(stanza);    // the passphrase must open it
      return;
    }
    const ring = Keyring.create(this.storage, stanza, this.pass!, this.passOption);
    this.rings.set(stanza, ring);
    await ring;
  }

  /** Refuses an encrypted stanza in a repository configured without encryption (and the reverse). */
  async stanzaCheck(stanza: string): Promise<void> {
    if (this.enabled) {
      await this.ring(stanza);
    } else if (await Keyring.exists(this.storage, stanza)) {
      throw new CryptoError(`stanza '${stanza}' is encrypted in repo${this.repoKey}, but repo${this.repoKey} is configured without encryption`,
        { hint: `set repo${this.repoKey}-cipher-type=aes-256-gcm and repo${this.repoKey}-cipher-pass in the repo-server configuration` });
    }
  }

  /** Keys by id for reading a stanza's objects; undefined for a plain repository. */
  async lookup(stanza: string): Promise<CipherKeyLookup | undefined> {
    if (!this.enabled) return undefined;
    const ring = await this.ring(stanza);
    return (id) => ring.key(id, stanza).key;
  }

  /** The decrypt filter for a stanza's objects (none for a plain repository). */
  async decryptFilters(stanza: string, what?: string): Promise<IoFilter[]> {
    return decryptFilters(await this.lookup(stanza), what);
  }

  async archiveKey(stanza: string): Promise<CipherDataKey | undefined> {
    return this.enabled ? (await this.ring(stanza)).archiveKey(stanza) : undefined;
  }

  async metaKey(stanza: string): Promise<CipherDataKey | undefined> {
    return this.enabled ? (await this.ring(stanza)).metaKey(stanza) : undefined;
  }

  async backupKey(stanza: string, label: string, priorKeyId: string | undefined): Promise<CipherDataKey | undefined> {
    return this.enabled ? (await this.ring(stanza)).backupKey(this.storage, stanza, label, priorKeyId) : undefined;
  }

  /** The key an object of the stanza was encrypted with, from its header (undefined: plain repository). */
  async objectKey(stanza: string, storage: Storage, key: string): Promise<CipherDataKey | undefined> {
    if (!this.enabled) return undefined;
    const head: Buffer[] = [];
    for await (const chunk of await storage.newRead(key, { limit: CIPHER_HEADER_MAX })) head.push(chunk as Buffer);
    const id = cipherKeyIdOf(Buffer.concat(head), `'${key}'`);
    if (id === undefined) throw new CryptoError(`'${key}' is truncated inside its encryption header`);
    return (await this.ring(stanza)).key(id, stanza);
  }

  /** Keys by id, for a job that reads them on the agent. */
  async keys(stanza: string, ids: Iterable<string>): Promise<CipherDataKey[]> {
    if (!this.enabled) return [];
    const ring = await this.ring(stanza);
    return [...new Set(ids)].map((id) => ring.key(id, stanza));
  }
}

/** Info files, manifests and resume records of a stanza: `archive|backup/<stanza>/...`. */
const META_RE = /^(?:archive|backup)\/([^/]+)\/(?:[^/]+\/)?(?:archive\.info|backup\.info|backup\.manifest|backup\.partial)(?:\.copy)?$/;

/** The stanza whose metadata is at `key`, or undefined for any other key. */
export function metaStanzaOf(key: string): string | undefined {
  return META_RE.exec(key)?.[1];
}

/**
 * The repository's storage with the metadata encrypted: info files, manifests and resume
 * records are sealed with the stanza's metadata key when written and opened when read (whole,
 * in memory: they are at most tens of megabytes). Every other key passes through untouched (data
 * files arrive encrypted from the agent; the key file is its own protection).
 */
export class CipherMetaStorage implements Storage {
  readonly type: string;

  constructor(private readonly inner: Storage, private readonly cipher: RepoCipher) {
    this.type = inner.type;
  }

  newWrite(key: string, opts?: StorageWriteOptions): Writable {
    const stanza = metaStanzaOf(key);
    if (stanza === undefined || !this.cipher.enabled) return this.inner.newWrite(key, opts);
    const parts: Buffer[] = [];
    return new Writable({
      write: (chunk: Buffer, _e, cb) => { parts.push(chunk); cb(); },
      final: (cb) => {
        void (async () => {
          const k = await this.cipher.metaKey(stanza);
          await this.inner.put(key, encryptBuffer(k!, Buffer.concat(parts)), opts);
        })().then(() => cb(), cb);
      },
    });
  }

  private async open(key: string, data: Buffer): Promise<Buffer> {
    const stanza = metaStanzaOf(key);
    if (stanza === undefined) return data;
    if (!this.cipher.enabled) {
      if (cipherIsEncrypted(data)) await this.cipher.stanzaCheck(stanza);
      return data;
    }
    return decryptBuffer((await this.cipher.lookup(stanza))!, data, `'${key}'`);
  }

  async newRead(key: string, opts?: StorageReadOptions): Promise<Readable> {
    // A plain repository streams its manifests (an encrypted one found there fails in get()).
    if (metaStanzaOf(key) === undefined || !this.cipher.enabled) return this.inner.newRead(key, opts);
    let data = await this.get(key);
    if (opts?.offset) data = data.subarray(opts.offset);
    if (opts?.limit !== undefined) data = data.subarray(0, opts.limit);
    return Readable.from([data]);
  }

  async get(key: string): Promise<Buffer> {
    return this.open(key, await this.inner.get(key));
  }

  async put(key: string, data: Buffer | string, opts?: StorageWriteOptions): Promise<void> {
    if (metaStanzaOf(key) === undefined || !this.cipher.enabled) return this.inner.put(key, data, opts);
    await pipeline(Readable.from([Buffer.from(data)]), this.newWrite(key, opts));
  }

  /** Data files only (metadata is sealed on put): the driver's putMany. */
  get putMany(): Storage['putMany'] {
    const inner = this.inner;
    if (!inner.putMany) return undefined;
    return (items, opts) => {
      if (this.cipher.enabled && items.some((i) => metaStanzaOf(i.key) !== undefined)) throw new Error('putMany of metadata in an encrypted repository');
      return inner.putMany!(items, opts);
    };
  }

  /** Data files only (metadata is sealed on put): the driver's two-step put. */
  get putStaged(): Storage['putStaged'] {
    const inner = this.inner;
    if (!inner.putStaged) return undefined;
    return (key, data) => {
      if (metaStanzaOf(key) !== undefined && this.cipher.enabled) throw new Error(`putStaged of metadata '${key}' in an encrypted repository`);
      return inner.putStaged!(key, data);
    };
  }

  /** Data files only (metadata is sealed on put): the driver's appendable files. */
  get appendable(): Storage['appendable'] {
    const inner = this.inner;
    if (!inner.appendable) return undefined;
    return (near) => {
      if (metaStanzaOf(near) !== undefined && this.cipher.enabled) throw new Error(`appendable near metadata '${near}' in an encrypted repository`);
      return inner.appendable!(near);
    };
  }

  /** Data files only (metadata is opened by get): the driver's getMany. */
  get getMany(): Storage['getMany'] {
    const inner = this.inner;
    if (!inner.getMany) return undefined;
    return (keys, opts) => {
      if (this.cipher.enabled && keys.some((k) => metaStanzaOf(k) !== undefined)) throw new Error('getMany of metadata in an encrypted repository');
      return inner.getMany!(keys, opts);
    };
  }

  info(key: string): Promise<StorageInfo | undefined> { return this.inner.info(key); }
  exists(key: string): Promise<boolean> { return this.inner.exists(key); }
  list(path: string, opts?: StorageListOptions): Promise<string[]> { return this.inner.list(path, opts); }
  listRecursive(path: string): AsyncIterable<StorageInfo> {
    if (!this.inner.listRecursive) throw new Error(`storage '${this.inner.type}' cannot list recursively`);
    return this.inner.listRecursive(path);
  }
  remove(key: string, opts?: { errorOnMissing?: boolean }): Promise<void> { return this.inner.remove(key, opts); }
  pathRemove(path: string, opts?: { recurse?: boolean }): Promise<void> { return this.inner.pathRemove(path, opts); }
  async pathSync(path: string): Promise<void> { await this.inner.pathSync?.(path); }
}
