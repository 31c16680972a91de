import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { ConfigError, log } from '@openrds/common';

/** A serial number as hex digits: uppercase, no separators, no leading zeros. */
export function serialNormalize(s: string): string {
  return s.replace(/^0x/i, '').replace(/[:\s]/g, '').toUpperCase().replace(/^0+(?=.)/, '');
}

/**
 * The serials a CRL file revokes (tls-server-crl-file), verified against the CA with openssl and
 * re-read when the file changes (checked at most every 5 s), so `pki revoke` takes effect
 * without a restart. A CRL that does not verify is refused at start; later, the last good one stays.
 */
export class CrlWatch {
  private serials = new Set<string>();
  private mtimeMs = 0;
  private checkedAt = 0;

  constructor(private readonly file: string, private readonly caFile: string) {
    this.load(true);
  }

  private load(first: boolean): void {
    try {
      const st = fs.statSync(this.file);
      const env = { ...process.env, OPENSSL_CONF: '/dev/null' };
      execFileSync('openssl', ['crl', '-in', this.file, '-CAfile', this.caFile, '-noout'], { env, stdio: 'pipe' });
      const text = execFileSync('openssl', ['crl', '-in', this.file, '-noout', '-text'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      this.serials = new Set([...text.matchAll(/Serial Number:\s*([0-9A-Fa-f:]+)/g)].map((m) => serialNormalize(m[1]!)));
      this.mtimeMs = st.mtimeMs;
      log.info(`tls-server-crl-file '${this.file}': ${this.serials.size} revoked certificate(s)`);
    } catch (err) {
      const why = (err as { stderr?: Buffer | string }).stderr?.toString().trim() || (err as Error).message;
      if (first) {
        throw new ConfigError(`unable to use tls-server-crl-file '${this.file}': ${why}`,
          { hint: 'it must be a PEM CRL signed by the CA of tls-server-ca-file (openrds-admin pki revoke writes one)' });
      }
      log.warn(`unable to re-read tls-server-crl-file '${this.file}' (${why}): keeping the ${this.serials.size} revocation(s) read before`);
      this.mtimeMs = fs.existsSync(this.file) ? fs.statSync(this.file).mtimeMs : this.mtimeMs;
    }
  }

  /** True when the serial is revoked (re-reading a changed file first). */
  revoked(serial: string): boolean {
    const now = Date.now();
    if (now - this.checkedAt > 5000) {
      this.checkedAt = now;
      const m = fs.existsSync(this.file) ? fs.statSync(this.file).mtimeMs : 0;
      if (m !== this.mtimeMs) this.load(false);
    }
    return this.serials.has(serialNormalize(serial));
  }
}
