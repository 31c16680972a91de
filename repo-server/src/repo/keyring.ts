import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { CryptoError, FormatError, type CipherDataKey, type Storage, infoFileLoad, infoFileSave } from '@openrds/common';

/**
 * A stanza's key file: the data keys of its encrypted repository, each wrapped (AES-256-GCM) with
 * a key-encryption key derived (scrypt) from a passphrase. Passphrases have versions: version 1
 * is made by stanza-create, each `openrds-admin key rotate` adds the next one. A rotation wraps
 * every existing data key with the new version too (so the newest passphrase opens all the data)
 * and makes new archive and metadata keys wrapped with the new version only (so a passphrase that
 * was rotated away does not open anything written after the rotation). Nothing is re-encrypted.
 *
 * Data keys: `archive-v<N>` (WAL pushed while version N is the newest), `meta-v<N>` (info files
 * and manifests), `backup-<label>` (a full backup and the diff/incr backups taking it as prior
 * while its version is the newest).
 */
export interface KeyFileVersion {
  version: number;
  created: string;
  kdf: { name: 'scrypt'; n: number; r: number; p: number; salt: string };
  /** A random value wrapped with this version's key: proves a passphrase opens it. */
  check: string;
}

export interface KeyFileEntry {
  id: string;
  purpose: 'archive' | 'meta' | 'backup';
  /** The passphrase version that was newest when the key was made. */
  version: number;
  created: string;
  /** The key wrapped by each passphrase version that may open it (base64: nonce, ciphertext, tag). */
  wrapped: Record<string, string>;
}

export interface KeyFile {
  format: 1;
  cipher: 'aes-256-gcm';
  versions: KeyFileVersion[];
  keys: KeyFileEntry[];
}

const SCRYPT = { n: 32768, r: 8, p: 1 };

async function kek(pass: string, v: KeyFileVersion): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(pass, Buffer.from(v.kdf.salt, 'base64'), 32, { N: v.kdf.n, r: v.kdf.r, p: v.kdf.p, maxmem: 256 * v.kdf.n * v.kdf.r },
      (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function wrap(kekKey: Buffer, aad: string, key: Buffer): string {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kekKey, nonce);
  c.setAAD(Buffer.from(aad));
  const body = Buffer.concat([c.update(key), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64');
}

/** undefined when the key-encryption key is not the one that wrapped it (a wrong passphrase). */
function unwrap(kekKey: Buffer, aad: string, wrapped: string): Buffer | undefined {
  const raw = Buffer.from(wrapped, 'base64');
  if (raw.length < 12 + 16) return undefined;
  const d = createDecipheriv('aes-256-gcm', kekKey, raw.subarray(0, 12));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(raw.subarray(raw.length - 16));
  try {
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

const checkAad = (v: number): string => `openrds-keyfile-check:v${v}`;
const keyAad = (id: string, v: number): string => `openrds-data-key:${id}:v${v}`;

async function versionMake(pass: string, version: number, passOption: string): Promise<{ entry: KeyFileVersion; kek: Buffer }> {
  if (pass.length < 8) {
    throw new CryptoError(`the passphrase (${passOption}) is shorter than 8 characters`,
      { hint: `set ${passOption} (a 0600 config file or the environment) to a long random string, e.g. openssl rand -base64 48` });
  }
  const entry: KeyFileVersion = {
    version, created: new Date().toISOString(), kdf: { name: 'scrypt', ...SCRYPT, salt: randomBytes(16).toString('base64') }, check: '',
  };
  const k = await kek(pass, entry);
  entry.check = wrap(k, checkAad(version), randomBytes(32));
  return { entry, kek: k };
}

/** A key file opened with a passphrase: the data keys that passphrase's version may open. */
export class Keyring {
  private constructor(
    private file: KeyFile,
    private openedVersion: number,
    private kekKey: Buffer,
    private readonly keys: Map<string, Buffer>,
    /** The option that holds the passphrase (repoN-cipher-pass), for messages. */
    private readonly passOption: string,
  ) {}

  /** The passphrase version the passphrase opened (the new one after a rotate). */
  get opened(): number { return this.openedVersion; }

  static keyFileKey(stanza: string): string { return `keys/${stanza}/keyring.info`; }

  /** Creates the key file of a new stanza (version 1, archive and metadata keys). */
  static async create(storage: Storage, stanza: string, pass: string, passOption = 'repo1-cipher-pass'): Promise<Keyring> {
    const { entry, kek: k } = await versionMake(pass, 1, passOption);
    const ring = new Keyring({ format: 1, cipher: 'aes-256-gcm', versions: [entry], keys: [] }, 1, k, new Map(), passOption);
    ring.keyAdd('archive-v1', 'archive');
    ring.keyAdd('meta-v1', 'meta');
    await ring.save(storage, stanza);
    return ring;
  }

  static async exists(storage: Storage, stanza: string): Promise<boolean> {
    const key = Keyring.keyFileKey(stanza);
    return (await storage.exists(key)) || (await storage.exists(`${key}.copy`));
  }

  /** Opens a stanza's key file with a passphrase: CryptoError when it opens no version. */
  static async open(storage: Storage, stanza: string, pass: string, passOption = 'repo1-cipher-pass'): Promise<Keyring> {
    const file = await infoFileLoad<KeyFile>(storage, Keyring.keyFileKey(stanza));
    if (file.format !== 1 || !Array.isArray(file.versions) || !Array.isArray(file.keys)) throw new FormatError(`key file of stanza '${stanza}' has an unknown layout`);
    for (const v of [...file.versions].sort((a, b) => b.version - a.version)) {
      const k = await kek(pass, v);
      if (!unwrap(k, checkAad(v.version), v.check)) continue;
      const keys = new Map<string, Buffer>();
      for (const e of file.keys) {
        const w = e.wrapped[String(v.version)];
        if (w === undefined) continue;
        const key = unwrap(k, keyAad(e.id, v.version), w);
        if (!key) throw new CryptoError(`key '${e.id}' of stanza '${stanza}' does not open with passphrase version ${v.version}: the key file is damaged`);
        keys.set(e.id, key);
      }
      return new Keyring(file, v.version, k, keys, passOption);
    }
    throw new CryptoError(`${passOption} does not open the key file of stanza '${stanza}'`,
      { hint: `set ${passOption} (config file or environment) to the passphrase the stanza was created or last rotated with` });
  }

  /** The newest passphrase version of the key file. */
  get newest(): number {
    return Math.max(...this.file.versions.map((v) => v.version));
  }

  /** Versions and keys, without key material (for `key list`). */
  describe(): { versions: { version: number; created: string }[]; keys: { id: string; purpose: string; version: number; created: string; openedBy: number[] }[]; opened: number } {
    return {
      opened: this.opened,
      versions: this.file.versions.map((v) => ({ version: v.version, created: v.created })),
      keys: this.file.keys.map((k) => ({ id: k.id, purpose: k.purpose, version: k.version, created: k.created, openedBy: Object.keys(k.wrapped).map(Number) })),
    };
  }

  /** Refuses to write new data with keys of a passphrase version that was rotated away. */
  private newestCheck(stanza: string): void {
    if (this.opened !== this.newest) {
      throw new CryptoError(`${this.passOption} opens key version ${this.opened} of stanza '${stanza}', but its keys were rotated to version ${this.newest}: it may read older data but not write new data`,
        { hint: `set ${this.passOption} to the passphrase given to the last openrds-admin key rotate` });
    }
  }

  private current(stanza: string, purpose: 'archive' | 'meta'): CipherDataKey {
    this.newestCheck(stanza);
    const e = this.file.keys.filter((k) => k.purpose === purpose && k.version === this.newest).pop();
    const key = e ? this.keys.get(e.id) : undefined;
    if (!e || !key) throw new CryptoError(`key file of stanza '${stanza}' has no ${purpose} key for version ${this.newest}`);
    return { id: e.id, key };
  }

  /** The key new WAL is encrypted with. */
  archiveKey(stanza: string): CipherDataKey { return this.current(stanza, 'archive'); }

  /** The key new info files and manifests are encrypted with. */
  metaKey(stanza: string): CipherDataKey { return this.current(stanza, 'meta'); }

  /**
   * The key of a new backup: the prior backup's key when it belongs to the newest version (a
   * diff/incr inherits its full's key), a new `backup-<label>` key otherwise (saved before use).
   */
  async backupKey(storage: Storage, stanza: string, label: string, priorKeyId: string | undefined): Promise<CipherDataKey> {
    this.newestCheck(stanza);
    if (priorKeyId !== undefined) {
      const prior = this.file.keys.find((k) => k.id === priorKeyId);
      const key = this.keys.get(priorKeyId);
      if (prior && key && prior.version === this.newest) return { id: priorKeyId, key };
    }
    const id = `backup-${label}`;
    // A resumed backup keeps the key its stored files were written with.
    const existing = this.file.keys.find((k) => k.id === id);
    if (existing) return this.key(id, stanza);
    const key = this.keyAdd(id, 'backup');
    await this.save(storage, stanza);
    return { id, key };
  }

  /** A data key by id: CryptoError naming it when this passphrase version does not open it. */
  key(id: string, stanza: string): CipherDataKey {
    const key = this.keys.get(id);
    if (key) return { id, key };
    const e = this.file.keys.find((k) => k.id === id);
    throw new CryptoError(e
      ? `key '${id}' of stanza '${stanza}' was made for passphrase version ${e.version}; ${this.passOption} opens version ${this.opened}`
      : `key '${id}' is not in the key file of stanza '${stanza}'`,
    { hint: e ? 'set repo1-cipher-pass to the newest passphrase (key rotate)' : 'the object names a key this stanza never had: was it copied from another repository?' });
  }

  /**
   * Adds passphrase version newest+1: every key this ring opens is wrapped with it as well, and
   * new archive and metadata keys are made for it alone. The caller must have opened the newest version.
   */
  async rotate(storage: Storage, stanza: string, newPass: string): Promise<number> {
    this.newestCheck(stanza);
    const version = this.newest + 1;
    const { entry, kek: k } = await versionMake(newPass, version, this.passOption);
    if (this.file.keys.some((e) => e.wrapped[String(this.opened)] !== undefined && !this.keys.has(e.id))) {
      throw new CryptoError(`key file of stanza '${stanza}' holds keys this passphrase cannot open: refusing to rotate`);
    }
    this.file.versions.push(entry);
    for (const e of this.file.keys) {
      const key = this.keys.get(e.id);
      if (key) e.wrapped[String(version)] = wrap(k, keyAad(e.id, version), key);
    }
    this.kekKey = k;
    this.openedVersion = version;
    this.keyAdd(`archive-v${version}`, 'archive');
    this.keyAdd(`meta-v${version}`, 'meta');
    await this.save(storage, stanza);
    return version;
  }

  private keyAdd(id: string, purpose: KeyFileEntry['purpose']): Buffer {
    if (this.file.keys.some((k) => k.id === id)) throw new CryptoError(`key '${id}' exists already`);
    const key = randomBytes(32);
    this.file.keys.push({ id, purpose, version: this.opened, created: new Date().toISOString(), wrapped: { [String(this.opened)]: wrap(this.kekKey, keyAad(id, this.opened), key) } });
    this.keys.set(id, key);
    return key;
  }

  private async save(storage: Storage, stanza: string): Promise<void> {
    await infoFileSave(storage, Keyring.keyFileKey(stanza), this.file);
  }
}
