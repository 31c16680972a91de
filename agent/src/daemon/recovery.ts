import * as fs from 'node:fs';
import * as path from 'node:path';

export interface RecoveryWriteOptions {
  pgPath: string;
  pgVersion: number;
  settings: { key: string; value: string }[];
  signalFile: string;          // recovery.signal | standby.signal | ''
}

/** Quotes a value for postgresql.conf. */
export function pgConfQuote(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * Writes the recovery settings where the cluster's version reads them: appended to
 * postgresql.auto.conf (PG >= 12, earlier recovery settings commented out) with recovery.signal or
 * standby.signal, or recovery.conf (PG < 12).
 */
export async function recoveryWrite(opts: RecoveryWriteOptions): Promise<void> {
  const header = `# Recovery settings written by openrds restore at ${new Date().toISOString()}`;
  const lines = opts.settings.map((s) => `${s.key} = ${pgConfQuote(s.value)}`);
  if (opts.pgVersion >= 12) {
    const autoConf = path.join(opts.pgPath, 'postgresql.auto.conf');
    let existing = '';
    try { existing = await fs.promises.readFile(autoConf, 'utf8'); } catch { /* absent is fine */ }
    const keys = new Set(opts.settings.map((s) => s.key));
    const kept = existing.split('\n').map((line) => {
      const key = /^\s*([a-z_]+)\s*=/.exec(line)?.[1];
      return key && (keys.has(key) || key.startsWith('recovery_target') || key === 'restore_command')
        ? `# Removed by openrds restore: ${line}` : line;
    });
    const body = `${kept.join('\n').replace(/\n*$/, '\n')}${header}\n${lines.join('\n')}\n`;
    await writeFileDurable(autoConf, body, 0o600);
    if (opts.signalFile) await writeFileDurable(path.join(opts.pgPath, opts.signalFile), '', 0o600);
  } else {
    const extra = opts.signalFile === 'standby.signal' ? ["standby_mode = 'on'"] : [];
    if (opts.signalFile || lines.length > 0) {
      await writeFileDurable(path.join(opts.pgPath, 'recovery.conf'), `${header}\n${[...lines, ...extra].join('\n')}\n`, 0o600);
    }
  }
}

/** Writes a small file and fsyncs it. */
export async function writeFileDurable(file: string, text: string, mode: number): Promise<void> {
  const fh = await fs.promises.open(file, 'w', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs a directory so that the names in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}
