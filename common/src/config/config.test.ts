import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, OptionInvalidError, OptionRequiredError } from '../error';
import { configLoad } from './config';
import { commandHelp } from './help';

describe('configLoad', () => {
  let dir: string;
  let conf: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'config-'));
    conf = path.join(dir, 'openrds.conf');
    fs.writeFileSync(conf, [
      '[global]', 'repo1-path=/repo/global', 'compress-level=5', 'process-max=2', 'repo1-cipher-pass=s3cret-pass',
      '[global:backup]', 'compress-level=6',
      '[main]', 'pg1-path=/pg/main', 'process-max=3',
      '[main:backup]', 'process-max=4', 'exclude=a/', 'exclude=b',
    ].join('\n'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const load = (command: Parameters<typeof configLoad>[0]['command'], argv: string[], env: NodeJS.ProcessEnv = {}) =>
    configLoad({ command, argv: [`--config=${conf}`, ...argv], env });

  it('takes command line over environment over the file sections over the default', () => {
    const c = load('backup', ['--stanza=main', '--process-max=8'], { OPENRDS_COMPRESS_LEVEL: '7' });
    expect(c.int('process-max')).toBe(8);
    expect(c.source('process-max')).toBe('command-line');
    expect(c.int('compress-level')).toBe(7);
    expect(c.source('compress-level')).toBe('env');
    expect(c.str('repo1-path')).toBe('/repo/global');
    expect(c.source('repo1-path')).toBe('config');
    expect(c.int('compress-level-network')).toBe(1);
    expect(c.source('compress-level-network')).toBe('default');
  });

  it('reads [stanza:command] before [stanza] before [global:command] before [global]', () => {
    expect(load('backup', ['--stanza=main']).int('process-max')).toBe(4);
    expect(load('restore', ['--stanza=main']).int('process-max')).toBe(3);
    expect(load('restore', ['--stanza=other']).int('process-max')).toBe(2);
    expect(load('backup', ['--stanza=other']).int('compress-level')).toBe(6);
    expect(load('backup', ['--stanza=main']).list('exclude')).toEqual(['a/', 'b']);
  });

  it('accepts --name value, --no-name, --reset-name, repeated lists and hashes, and positional args', () => {
    const c = load('restore', ['--stanza', 'main', '--no-delta', '--reset-process-max', '--recovery-option=a=1', '--recovery-option', 'b=x=y', '--target-exclusive']);
    expect(c.stanza).toBe('main');
    expect(c.bool('delta')).toBe(false);
    expect(c.int('process-max')).toBe(1);
    expect(c.hash('recovery-option')).toEqual({ a: '1', b: 'x=y' });
    expect(c.bool('target-exclusive')).toBe(true);
    const p = load('archive-get', ['000000010000000000000001', 'pg_wal/RECOVERYXLOG', '--stanza=main']);
    expect(p.args).toEqual(['000000010000000000000001', 'pg_wal/RECOVERYXLOG']);
  });

  it('parses sizes, times, booleans and enums per command', () => {
    const c = load('backup', ['--stanza=main', '--buffer-size=512KB', '--archive-timeout=2.5', '--start-fast=y', '--type=full']);
    expect(c.int('buffer-size')).toBe(512 * 1024);
    expect(c.num('archive-timeout')).toBe(2.5);
    expect(c.bool('start-fast')).toBe(true);
    expect(load('restore', ['--stanza=main']).str('type')).toBe('default');
    expect(() => load('backup', ['--stanza=main', '--type=time'])).toThrow("'time' is not valid for option 'type': allowed values are full, diff, incr");
    expect(() => load('backup', ['--stanza=main', '--process-max=0'])).toThrow('below the minimum 1');
    expect(() => load('backup', ['--stanza=main', '--buffer-size=lots'])).toThrow(OptionInvalidError);
  });

  it('refuses secrets on the command line, reads them from env or file, and never shows them', () => {
    expect(() => load('backup', ['--stanza=main', '--repo1-cipher-pass=x'])).toThrow('is a secret and not allowed on the command line');
    const c = load('backup', ['--stanza=main']);
    expect(c.str('repo1-cipher-pass')).toBe('s3cret-pass');
    expect(JSON.stringify(c.toSafeRecord())).not.toContain('s3cret-pass');
    expect(c.toSafeRecord()['repo1-cipher-pass']).toBe('<redacted>');
  });

  it('names unknown and misplaced options with a hint', () => {
    try {
      load('backup', ['--stanza=main', '--proces-max=2']);
      throw new Error('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(OptionInvalidError);
      expect((err as OptionInvalidError).message).toBe("invalid option 'proces-max'");
      expect((err as OptionInvalidError).hint).toContain("did you mean 'process-max'?");
    }
    expect(() => load('info', ['--target=x'])).toThrow("option 'target' is not valid for command 'info'");
    fs.appendFileSync(conf, '\n[global]\ntarget=x\n');
    expect(() => load('info', [])).toThrow(ConfigError);
  });

  it('requires what a command cannot do without', () => {
    expect(() => load('backup', [])).toThrow(OptionRequiredError);
    expect(() => load('backup', [])).toThrow('backup command requires option: stanza');
    expect(() => configLoad({ command: 'info', argv: ['--config=/nonexistent/openrds.conf'], env: {} })).toThrow("config file '/nonexistent/openrds.conf' does not exist");
  });
});

describe('commandHelp', () => {
  it('lists the commands of a program and the options of a command with defaults', () => {
    expect(commandHelp('openrds-admin')).toContain('restore');
    const h = commandHelp('openrds-admin', 'restore');
    expect(h).toContain('--target-action');
    expect(h).toContain('[pause|promote|shutdown]');
    expect(h).toContain('(default: pause)');
    expect(commandHelp('openrds-agent', 'archive-get')).toContain('archive-get %f "%p"');
  });
});
