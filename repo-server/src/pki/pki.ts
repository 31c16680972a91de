import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileExistsError, FileMissingError, InternalError, OptionInvalidError, tlsKeyFileRead } from '@openrds/common';

/**
 * A small CA for the repo-server's mutual TLS, made with Debian's `openssl` binary: Node's crypto
 * signs but cannot build X.509 certificates, and openssl is on every Debian host and is the tool
 * operators already know to inspect what it made. Keys are EC P-256, written mode 0600.
 */

export const CA_DAYS = 3650;
export const CERT_DAYS = 825;

/** The files of a PKI directory. */
export function pkiFiles(dir: string, name: string): { cert: string; key: string } {
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

// One config for every openssl call, so that the host's openssl.cnf cannot add or change extensions.
const OPENSSL_CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @alt
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/** Runs openssl with the args and stdin; its stdout. */
export function openssl(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'utf8', maxBuffer: 1024 * 1024, env: { ...process.env, OPENSSL_CONF: '/dev/null' } },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          return reject(new FileMissingError('the openssl program is not installed', { hint: 'apt-get install openssl' }));
        }
        reject(new InternalError(`openssl ${args[0]} failed: ${stderr.trim() || err.message}`));
      });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Writes a new file (never over an existing one) with the mode, durably. */
function fileCreate(file: string, text: string, mode: number): void {
  const fd = fs.openSync(file, 'wx', mode);
  try {
    fs.writeSync(fd, text);
    fs.fchmodSync(fd, mode);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function refuseExisting(files: string[], hint: string): void {
  const existing = files.filter((f) => fs.existsSync(f));
  if (existing.length > 0) throw new FileExistsError(`'${existing[0]}' already exists: nothing was changed`, { hint });
}

/** Runs `work(tmpDir)` with a private scratch directory inside the PKI directory (for the openssl config). */
async function withScratch<T>(dir: string, work: (scratch: string) => Promise<T>): Promise<T> {
  const scratch = fs.mkdtempSync(path.join(dir, '.pki-'));
  try {
    return await work(scratch);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

async function keyNew(file: string): Promise<void> {
  fileCreate(file, await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']), 0o600);
}

function serial(): string {
  // 16 random bytes, the top bit cleared so that the serial stays positive.
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return `0x${b.toString('hex')}`;
}

/** Signs a certificate for `key` with the CA in `dir`. */
async function certIssue(dir: string, scratch: string, opts: { cn: string; key: string; ext: 'server_ext' | 'client_ext'; days: number; sans?: string[] }): Promise<string> {
  const ca = pkiFiles(dir, 'ca');
  tlsKeyFileRead(ca.key, 'CA key');
  const cnf = path.join(scratch, 'openssl.cnf');
  const alt = opts.sans ? `[alt]\n${opts.sans.map((h, i) => `${/^[\d.]+$|:/.test(h) ? 'IP' : 'DNS'}.${i + 1} = ${h}`).join('\n')}\n` : '';
  fs.writeFileSync(cnf, OPENSSL_CNF + alt, { mode: 0o600 });
  const csr = await openssl(['req', '-new', '-config', cnf, '-key', opts.key, '-subj', `/CN=${opts.cn}`]);
  return openssl(['x509', '-req', '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial(), '-days', String(opts.days),
    '-extfile', cnf, '-extensions', opts.ext, '-sha256'], csr);
}

/** What `pki init` made. */
export interface PkiInitResult { ca: { cert: string; key: string }; server: { cert: string; key: string } }

/**
 * `pki init`: a CA (key and self-signed certificate) and the repo-server's certificate for the
 * names and addresses it is reached by. Refuses to touch a directory that already has a CA.
 */
export async function pkiInit(dir: string, opts: { hosts: string[]; days?: number }): Promise<PkiInitResult> {
  if (opts.hosts.length === 0) throw new OptionInvalidError('pki init needs at least one --host', { hint: '--host=backup.example.net --host=10.0.0.5' });
  for (const h of opts.hosts) {
    if (!/^[A-Za-z0-9.:*-]+$/.test(h)) throw new OptionInvalidError(`'${h}' is not a host name or IP address`, { hint: 'one name or address per --host' });
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = pkiFiles(dir, 'ca');
  const server = pkiFiles(dir, 'server');
  refuseExisting([ca.key, ca.cert, server.key, server.cert], `pki init makes a new CA in an empty directory; use 'pki issue' to add certificates, or another --pki-path`);
  const made = [ca.key, ca.cert, server.key, server.cert];
  await withScratch(dir, async (scratch) => {
    const cnf = path.join(scratch, 'openssl.cnf');
    fs.writeFileSync(cnf, OPENSSL_CNF, { mode: 0o600 });
    await keyNew(ca.key);
    const caCert = await openssl(['req', '-x509', '-new', '-config', cnf, '-extensions', 'ca_ext', '-key', ca.key,
      '-subj', '/CN=OpenRDS BackRest CA', '-set_serial', serial(), '-days', String(opts.days ?? CA_DAYS), '-sha256']);
    fileCreate(ca.cert, caCert, 0o644);
    await keyNew(server.key);
    fileCreate(server.cert, await certIssue(dir, scratch, { cn: opts.hosts[0]!, key: server.key, ext: 'server_ext', days: opts.days ?? CERT_DAYS, sans: opts.hosts }), 0o644);
  }).catch((err: unknown) => {
    // Half a CA is worse than none: the next pki init would refuse the directory.
    for (const f of made) fs.rmSync(f, { force: true });
    throw err;
  });
  return { ca, server };
}

/** `pki issue`: a client certificate (agent or admin) for a CN, signed by the CA of the directory. */
export async function pkiIssue(dir: string, opts: { cn: string; days?: number }): Promise<{ cert: string; key: string }> {
  const ca = pkiFiles(dir, 'ca');
  if (!fs.existsSync(ca.key) || !fs.existsSync(ca.cert)) {
    throw new FileMissingError(`'${dir}' has no CA (ca.crt and ca.key)`, { hint: `run 'openrds-admin pki init --pki-path=${dir}' first` });
  }
  if (opts.cn === 'ca' || opts.cn === 'server') throw new OptionInvalidError(`'${opts.cn}' is reserved for the files of pki init`, { hint: 'choose another --cn' });
  const out = pkiFiles(dir, opts.cn);
  refuseExisting([out.key, out.cert], 'a certificate for this CN exists: remove both files to issue a new one');
  await withScratch(dir, async (scratch) => {
    await keyNew(out.key);
    try {
      fileCreate(out.cert, await certIssue(dir, scratch, { cn: opts.cn, key: out.key, ext: 'client_ext', days: opts.days ?? CERT_DAYS }), 0o644);
    } catch (err) {
      fs.rmSync(out.key, { force: true });
      throw err;
    }
  });
  return out;
}

/** openssl's date form in its CA database: YYMMDDHHMMSSZ (UTC). */
function caDbDate(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}

/**
 * `pki revoke`: records the certificate of `cn` as revoked in the PKI directory's database
 * (`revoked.txt`, openssl's index format) and writes `crl.pem`, signed by the CA. A repo-server
 * with `tls-server-crl-file` pointing at it refuses that certificate within seconds (it re-reads
 * the file when it changes). The certificate files are kept: the CN can get a new certificate.
 */
export async function pkiRevoke(dir: string, cn: string): Promise<{ crl: string; serial: string }> {
  const ca = pkiFiles(dir, 'ca');
  if (!fs.existsSync(ca.key) || !fs.existsSync(ca.cert)) {
    throw new FileMissingError(`'${dir}' has no CA (ca.crt and ca.key)`, { hint: `run 'openrds-admin pki init --pki-path=${dir}' first` });
  }
  const cert = pkiFiles(dir, cn).cert;
  if (!fs.existsSync(cert)) throw new FileMissingError(`'${cert}' does not exist: no certificate was issued for CN '${cn}' here`);
  const out = await openssl(['x509', '-in', cert, '-noout', '-serial', '-enddate']);
  const certSerial = /serial=([0-9A-Fa-f]+)/.exec(out)?.[1]?.toUpperCase();
  const notAfter = /notAfter=(.+)/.exec(out)?.[1];
  if (!certSerial || !notAfter) throw new InternalError(`unable to read the serial and expiry of '${cert}'`);
  const db = path.join(dir, 'revoked.txt');
  const lines = fs.existsSync(db) ? fs.readFileSync(db, 'utf8').split('\n').filter((l) => l) : [];
  if (!lines.some((l) => l.split('\t')[3] === certSerial)) lines.push(['R', caDbDate(new Date(notAfter)), caDbDate(new Date()), certSerial, 'unknown', `/CN=${cn}`].join('\t'));
  const crl = path.join(dir, 'crl.pem');
  await withScratch(dir, async (scratch) => {
    fs.writeFileSync(path.join(scratch, 'index.txt'), `${lines.join('\n')}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(scratch, 'crlnumber'), `${Date.now().toString(16).toUpperCase().padStart(16, '0')}\n`, { mode: 0o600 });
    const cnf = path.join(scratch, 'ca.cnf');
    fs.writeFileSync(cnf, `[ca]\ndefault_ca = d\n[d]\ndatabase = ${scratch}/index.txt\ncrlnumber = ${scratch}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 3650\n`, { mode: 0o600 });
    await openssl(['ca', '-batch', '-config', cnf, '-gencrl', '-keyfile', ca.key, '-cert', ca.cert, '-out', path.join(scratch, 'crl.pem')]);
    fs.writeFileSync(`${db}.tmp`, `${lines.join('\n')}\n`, { mode: 0o600 });
    fs.renameSync(`${db}.tmp`, db);
    fs.copyFileSync(path.join(scratch, 'crl.pem'), `${crl}.tmp`);
    fs.chmodSync(`${crl}.tmp`, 0o644);
    fs.renameSync(`${crl}.tmp`, crl);
  });
  return { crl, serial: certSerial };
}
