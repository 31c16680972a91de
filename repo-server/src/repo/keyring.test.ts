import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CryptoError, PosixStorage, decryptBuffer, encryptBuffer } from '@openrds/common';
import { Keyring } from './keyring';

describe('Keyring', () => {
  let dir: string;
  let storage: PosixStorage;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyring-'));
    storage = new PosixStorage({ path: dir });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates, reopens and refuses a wrong passphrase; the file holds no key in the clear', async () => {
    const ring = await Keyring.create(storage, 'main', 'first passphrase');
    const archive = ring.archiveKey('main');
    expect(archive.id).toBe('archive-v1');
    const again = await Keyring.open(storage, 'main', 'first passphrase');
    expect(again.archiveKey('main').key.equals(archive.key)).toBe(true);
    expect(again.metaKey('main').id).toBe('meta-v1');
    await expect(Keyring.open(storage, 'main', 'not the passphrase')).rejects.toThrow(CryptoError);
    await expect(Keyring.open(storage, 'main', 'not the passphrase')).rejects.toThrow("repo1-cipher-pass does not open the key file of stanza 'main'");
    const raw = fs.readFileSync(path.join(dir, Keyring.keyFileKey('main')));
    expect(raw.includes(archive.key)).toBe(false);
    expect(raw.toString().includes(archive.key.toString('base64'))).toBe(false);
    await expect(Keyring.create(storage, 'short', 'short')).rejects.toThrow('shorter than 8 characters');
  });

  it('a diff/incr inherits its full backup key; a resumed backup keeps its key', async () => {
    const ring = await Keyring.create(storage, 'main', 'first passphrase');
    const full = await ring.backupKey(storage, 'main', '20261124-100000F', undefined);
    expect(full.id).toBe('backup-20261124-100000F');
    expect((await ring.backupKey(storage, 'main', '20261124-100000F_20261124-110000I', full.id)).id).toBe(full.id);
    expect((await ring.backupKey(storage, 'main', '20261124-100000F', undefined)).key.equals(full.key)).toBe(true);
    const reopened = await Keyring.open(storage, 'main', 'first passphrase');
    expect(reopened.key(full.id, 'main').key.equals(full.key)).toBe(true);
  });

  it('rotation: the new passphrase opens old and new data, the old one only old data and may not write', async () => {
    const ring = await Keyring.create(storage, 'main', 'first passphrase');
    const full1 = await ring.backupKey(storage, 'main', '20261124-100000F', undefined);
    const wal1 = encryptBuffer(ring.archiveKey('main'), Buffer.from('wal before'));
    expect(await ring.rotate(storage, 'main', 'second passphrase')).toBe(2);
    // The ring that rotated writes with the new version at once.
    expect(ring.archiveKey('main').id).toBe('archive-v2');
    // An incr of the old full after the rotation gets a key of its own.
    const incr = await ring.backupKey(storage, 'main', '20261124-100000F_20261124-120000I', full1.id);
    expect(incr.id).toBe('backup-20261124-100000F_20261124-120000I');
    const wal2 = encryptBuffer(ring.archiveKey('main'), Buffer.from('wal after'));

    const fresh = await Keyring.open(storage, 'main', 'second passphrase');
    const lookup = (id: string): Buffer => fresh.key(id, 'main').key;
    expect(decryptBuffer(lookup, wal1).toString()).toBe('wal before');
    expect(decryptBuffer(lookup, wal2).toString()).toBe('wal after');
    expect(fresh.key(full1.id, 'main').key.equals(full1.key)).toBe(true);

    const old = await Keyring.open(storage, 'main', 'first passphrase');
    expect(old.opened).toBe(1);
    expect(decryptBuffer((id) => old.key(id, 'main').key, wal1).toString()).toBe('wal before');
    expect(() => decryptBuffer((id) => old.key(id, 'main').key, wal2)).toThrow("key 'archive-v2' of stanza 'main' was made for passphrase version 2; repo1-cipher-pass opens version 1");
    expect(() => old.key(incr.id, 'main')).toThrow(CryptoError);
    expect(() => old.archiveKey('main')).toThrow('rotated to version 2');
    await expect(old.rotate(storage, 'main', 'third passphrase')).rejects.toThrow('rotated to version 2');
    expect(fresh.describe().versions.map((v) => v.version)).toEqual([1, 2]);
  });
});
