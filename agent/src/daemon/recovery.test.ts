import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pgConfQuote, recoveryWrite } from './recovery';

describe('recoveryWrite', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('appends to postgresql.auto.conf on PG 12+, comments out earlier recovery settings, and writes recovery.signal', async () => {
    fs.writeFileSync(path.join(dir, 'postgresql.auto.conf'), "work_mem = '8MB'\nrestore_command = 'old'\nrecovery_target_name = 'x'\n");
    await recoveryWrite({ pgPath: dir, pgVersion: 15, signalFile: 'recovery.signal',
      settings: [{ key: 'restore_command', value: 'agent archive-get %f "%p"' }, { key: 'recovery_target_time', value: "it's" }] });
    const text = fs.readFileSync(path.join(dir, 'postgresql.auto.conf'), 'utf8');
    expect(text).toContain("work_mem = '8MB'\n");
    expect(text).toContain("# Removed by openrds restore: restore_command = 'old'");
    expect(text).toContain("# Removed by openrds restore: recovery_target_name = 'x'");
    expect(text).toContain(`restore_command = 'agent archive-get %f "%p"'`);
    expect(text).toContain("recovery_target_time = 'it''s'");
    expect(fs.existsSync(path.join(dir, 'recovery.signal'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'recovery.conf'))).toBe(false);
  });

  it('writes recovery.conf on PG 11 and earlier, with standby_mode for a standby', async () => {
    await recoveryWrite({ pgPath: dir, pgVersion: 11, signalFile: 'standby.signal', settings: [{ key: 'restore_command', value: 'x' }] });
    const text = fs.readFileSync(path.join(dir, 'recovery.conf'), 'utf8');
    expect(text).toContain("restore_command = 'x'");
    expect(text).toContain("standby_mode = 'on'");
    expect(fs.existsSync(path.join(dir, 'standby.signal'))).toBe(false);
  });

  it('quotes backslashes and quotes for postgresql.conf', () => {
    expect(pgConfQuote("a'b\\c")).toBe("'a''b\\\\c'");
  });
});
