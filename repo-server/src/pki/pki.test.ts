import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileExistsError, FileMissingError } from '@openrds/common';
import { pkiInit, pkiIssue } from './pki';

describe('pki (openssl)', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pki-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('makes a CA and a server certificate for the given hosts, keys mode 0600', async () => {
    const r = await pkiInit(path.join(dir, 'p'), { hosts: ['backup.example.net', '10.0.0.5', '::1'] });
    const ca = new X509Certificate(fs.readFileSync(r.ca.cert));
    const server = new X509Certificate(fs.readFileSync(r.server.cert));
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(ca)).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.subject).toBe('CN=backup.example.net');
    expect(server.subjectAltName).toBe('DNS:backup.example.net, IP Address:10.0.0.5, IP Address:0:0:0:0:0:0:0:1');
    expect(server.checkHost('backup.example.net')).toBe('backup.example.net');
    for (const key of [r.ca.key, r.server.key]) expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'p')).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(path.join(dir, 'p')).sort()).toEqual(['ca.crt', 'ca.key', 'server.crt', 'server.key']);
  });

  it('refuses to make a second CA in the same directory and changes nothing', async () => {
    await pkiInit(dir, { hosts: ['localhost'] });
    const before = fs.readFileSync(path.join(dir, 'ca.crt'));
    await expect(pkiInit(dir, { hosts: ['localhost'] })).rejects.toThrow(FileExistsError);
    expect(fs.readFileSync(path.join(dir, 'ca.crt'))).toEqual(before);
  });

  it('issues a client certificate for a CN with the CA, valid for the given days', async () => {
    await pkiInit(dir, { hosts: ['localhost'] });
    const c = await pkiIssue(dir, { cn: 'agent-db1', days: 2 });
    const cert = new X509Certificate(fs.readFileSync(c.cert));
    expect(cert.subject).toBe('CN=agent-db1');
    expect(cert.verify(new X509Certificate(fs.readFileSync(path.join(dir, 'ca.crt'))).publicKey)).toBe(true);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    const days = (new Date(cert.validTo).getTime() - Date.now()) / 86400_000;
    expect(days).toBeGreaterThan(1.9);
    expect(days).toBeLessThan(2.1);
    expect(fs.statSync(c.key).mode & 0o777).toBe(0o600);
    await expect(pkiIssue(dir, { cn: 'agent-db1' })).rejects.toThrow("already exists");
  });

  it('refuses to issue without a CA, and with a CA key others can read', async () => {
    await expect(pkiIssue(dir, { cn: 'a' })).rejects.toThrow(FileMissingError);
    await pkiInit(dir, { hosts: ['localhost'] });
    fs.chmodSync(path.join(dir, 'ca.key'), 0o640);
    await expect(pkiIssue(dir, { cn: 'a' })).rejects.toThrow(/CA key '.*ca\.key' is readable or writable by group or others \(mode 0640\)/);
    expect(fs.existsSync(path.join(dir, 'a.key'))).toBe(false);
  });
});
