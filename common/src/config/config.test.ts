import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AssertError, ConfigError, OpenrdsError, OptionInvalidError, OptionRequiredError } from '../error';
import { log, logInit, logSubscribe, type LogRecord } from '../log';
import { configLoad } from './config';
import { commandHelp } from './help';
import { commandTable, optionTable, type CommandName } from './option-table';

/** The error a function throws (fails the test when it throws none). */
function thrown(fn: () => unknown): OpenrdsError {
  try {
    fn();
  } catch (err) {
    return err as OpenrdsError;
  }
  throw new Error('expected an error, none was thrown');
}

describe('configLoad', () => {
  let dir: string;
  let conf: string;
  let warnings: string[];
  let unsubscribe: () => void;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'config-'));
    conf = path.join(dir, 'openrds.conf');
    fs.writeFileSync(conf, [
      '# comment', '[global]', 'repo1-path=/repo/global', 'compress-level=5', 'process-max=2', 'repo1-cipher-pass=s3cret-pass',
      '[global:backup]', 'compress-level=6',
      '[main]', 'pg1-path=/pg/main', 'process-max=3', 'recovery-option=a=1',
      '[main:backup]', 'process-max=4', 'exclude=a/', 'exclude=b',
    ].join('\n'), { mode: 0o600 });
    logInit({ process: 'test', levelConsole: 'off' });
    warnings = [];
    unsubscribe = logSubscribe((r: LogRecord) => { if (r.level === 'warn') warnings.push(r.message); });
  });
  afterEach(() => {
    unsubscribe();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const load = (command: CommandName, argv: string[], env: NodeJS.ProcessEnv = {}) =>
    configLoad({ command, argv: [`--config=${conf}`, ...argv], env });

  describe('precedence', () => {
    it('takes command line over environment over the file sections over the default', () => {
      const c = load('backup', ['--stanza=main', '--process-max=8'], { OPENRDS_COMPRESS_LEVEL: '7', OPENRDS_PROCESS_MAX: '9' });
      expect([c.int('process-max'), c.source('process-max')]).toEqual([8, 'command-line']);
      expect([c.int('compress-level'), c.source('compress-level')]).toEqual([7, 'env']);
      expect([c.str('repo1-path'), c.source('repo1-path')]).toEqual(['/repo/global', 'config']);
      expect([c.int('compress-level-network'), c.source('compress-level-network')]).toEqual([1, 'default']);
      expect([c.strOpt('target'), c.source('checksum-page')]).toEqual([undefined, 'unset']);
    });

    it('reads [stanza:command] before [stanza] before [global:command] before [global]', () => {
      expect(load('backup', ['--stanza=main']).int('process-max')).toBe(4);
      expect(load('restore', ['--stanza=main']).int('process-max')).toBe(3);
      expect(load('restore', ['--stanza=other']).int('process-max')).toBe(2);
      expect(load('backup', ['--stanza=other']).int('compress-level')).toBe(6);
      expect(load('restore', ['--stanza=main']).source('compress-level')).toBe('unset');
      expect(load('backup', ['--stanza=main']).list('exclude')).toEqual(['a/', 'b']);
    });

    it('picks the stanza sections from OPENRDS_STANZA and the file from OPENRDS_CONFIG', () => {
      const c = configLoad({ command: 'restore', argv: [], env: { OPENRDS_STANZA: 'main', OPENRDS_CONFIG: conf } });
      expect([c.stanza, c.source('stanza'), c.int('process-max'), c.source('config')]).toEqual(['main', 'env', 3, 'env']);
    });

    it('merges the *.conf files of --config-include-path after the file, in name order', () => {
      const inc = path.join(dir, 'conf.d');
      fs.mkdirSync(inc);
      fs.writeFileSync(path.join(inc, '20-b.conf'), '[main:backup]\nexclude=d\n[global]\nbuffer-size=2MiB\n');
      fs.writeFileSync(path.join(inc, '10-a.conf'), '[main:backup]\nexclude=c\n[global]\nbuffer-size=4MiB\n');
      fs.writeFileSync(path.join(inc, 'ignored.txt'), '[global]\nbuffer-size=lots\n');
      const c = load('backup', ['--stanza=main', `--config-include-path=${inc}`]);
      expect(c.list('exclude')).toEqual(['a/', 'b', 'c', 'd']);
      expect(c.int('buffer-size')).toBe(2 * 1024 * 1024);
      expect(thrown(() => load('backup', ['--stanza=main', `--config-include-path=${dir}/nope`])).message)
        .toContain(`unable to read config include path '${dir}/nope'`);
    });

    it('reads no file with --no-config, and refuses a --config file that does not exist', () => {
      const c = configLoad({ command: 'backup', argv: ['--no-config', '--stanza=main'], env: {} });
      expect([c.strOpt('config'), c.str('repo1-path'), c.int('process-max')]).toEqual([undefined, '/var/lib/openrds', 1]);
      const err = thrown(() => configLoad({ command: 'info', argv: ['--config=/nonexistent/openrds.conf'], env: {} }));
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe("config file '/nonexistent/openrds.conf' does not exist");
    });
  });

  describe('command line forms', () => {
    it('accepts --name=value and --name value, and keeps positional args in order', () => {
      const c = load('restore', ['--stanza', 'main', '--target-action=promote', '--set', '20260101-000000F']);
      expect([c.stanza, c.str('target-action'), c.str('set')]).toEqual(['main', 'promote', '20260101-000000F']);
      const p = load('archive-get', ['000000010000000000000001', '--stanza=main', 'pg_wal/RECOVERYXLOG']);
      expect(p.args).toEqual(['000000010000000000000001', 'pg_wal/RECOVERYXLOG']);
      expect(load('archive-push', ['--stanza=main', '--', '--odd-name']).args).toEqual(['--odd-name']);
    });

    it('turns a boolean on with --name, off with --no-name, and never takes the next word as its value', () => {
      const c = load('restore', ['--stanza=main', '--target-exclusive', '--no-delta', 'positional']);
      expect([c.bool('target-exclusive'), c.bool('delta'), c.args]).toEqual([true, false, ['positional']]);
      expect(load('backup', ['--stanza=main', '--no-online']).bool('online')).toBe(false);
      expect(load('backup', ['--stanza=main', '--online=n']).bool('online')).toBe(false);
      expect(load('backup', ['--stanza=main'], { OPENRDS_ONLINE: 'false' }).bool('online')).toBe(false);
    });

    it('accumulates repeated list and hash options, over the file value', () => {
      const c = load('restore', ['--stanza=main', '--recovery-option=b=x=y', '--recovery-option', 'c=2', '--tablespace-map=ts1=/ts']);
      expect(c.hash('recovery-option')).toEqual({ b: 'x=y', c: '2' });
      expect(c.hash('tablespace-map')).toEqual({ ts1: '/ts' });
      expect(load('backup', ['--stanza=main', '--exclude=x', '--exclude=y']).list('exclude')).toEqual(['x', 'y']);
      expect(load('backup', ['--stanza=main'], { OPENRDS_EXCLUDE: 'x:y/' }).list('exclude')).toEqual(['x', 'y/']);
    });

    it('unsets with --no-name: an empty list, or no value for an option without a default', () => {
      expect(load('backup', ['--stanza=main', '--no-exclude']).list('exclude')).toEqual([]);
      const c = load('restore', ['--stanza=main', '--no-pg1-path']);
      expect([c.strOpt('pg1-path'), c.source('pg1-path')]).toEqual([undefined, 'command-line']);
      const err = thrown(() => load('backup', ['--stanza=main', '--no-process-max']));
      expect(err).toBeInstanceOf(OptionInvalidError);
      expect([err.message, err.hint]).toEqual(["option 'process-max' cannot be negated", 'use --reset-process-max for its default']);
    });

    it('goes back to the default with --reset-name, past the environment and the file', () => {
      const c = load('backup', ['--stanza=main', '--reset-process-max', '--reset-repo1-path'], { OPENRDS_PROCESS_MAX: '9' });
      expect([c.int('process-max'), c.source('process-max')]).toEqual([1, 'default']);
      expect([c.str('repo1-path'), c.source('repo1-path')]).toEqual(['/var/lib/openrds', 'default']);
      expect(load('backup', ['--stanza=main', '--reset-type']).str('type')).toBe(load('backup', ['--stanza=main']).str('type'));
      expect(load('backup', ['--stanza=main', '--exclude=x', '--reset-exclude', '--exclude=y']).list('exclude')).toEqual(['y']);
    });

    it('refuses a repeated single-valued option, a value on --no-/--reset-, a missing value and a single dash', () => {
      expect(thrown(() => load('backup', ['--stanza=main', '--process-max=2', '--process-max=3'])).message)
        .toBe("option 'process-max' cannot be set more than once");
      expect(thrown(() => load('backup', ['--stanza=main', '--no-online=y'])).message).toBe("option '--no-online' takes no value");
      expect(thrown(() => load('backup', ['--stanza=main', '--reset-process-max=2'])).message).toBe("option '--reset-process-max' takes no value");
      expect(thrown(() => load('backup', ['--stanza=main', '--process-max'])).message).toBe("option 'process-max' requires a value");
      const dash = thrown(() => load('archive-push', ['--stanza=main', '-stanza=x']));
      expect([dash.constructor, dash.message]).toEqual([OptionInvalidError, "invalid option '-stanza=x'"]);
    });
  });

  describe('values', () => {
    it('parses sizes, times, booleans and per-command enums', () => {
      const c = load('backup', ['--stanza=main', '--buffer-size=512KB', '--archive-timeout=2.5', '--start-fast=y', '--type=full']);
      expect([c.int('buffer-size'), c.num('archive-timeout'), c.bool('start-fast'), c.str('type')]).toEqual([512 * 1024, 2.5, true, 'full']);
      expect(load('backup', ['--stanza=main', '--buffer-size=1MiB']).int('buffer-size')).toBe(1048576);
      expect(load('backup', ['--stanza=main', '--buffer-size=1.5GB']).int('buffer-size')).toBe(1.5 * 1024 ** 3);
      expect(load('backup', ['--stanza=main', '--buffer-size=65536']).int('buffer-size')).toBe(65536);
      expect(load('restore', ['--stanza=main']).str('type')).toBe('default');
      expect(load('restore', ['--stanza=main', '--type=time']).str('type')).toBe('time');
    });

    it('names the option, the value and the reason of a bad value', () => {
      expect(thrown(() => load('backup', ['--stanza=main', '--type=time'])).message)
        .toBe("'time' is not valid for option 'type': allowed values are full, diff, incr");
      expect(thrown(() => load('backup', ['--stanza=main', '--process-max=0'])).message).toBe("'0' is not valid for option 'process-max': below the minimum 1");
      expect(thrown(() => load('backup', ['--stanza=main', '--process-max=1000'])).message).toContain('above the maximum 999');
      expect(thrown(() => load('backup', ['--stanza=main', '--process-max=1.5'])).message).toContain('expected an integer');
      expect(thrown(() => load('backup', ['--stanza=main', '--process-max=99999999999999999999'])).message).toContain('expected an integer');
      expect(thrown(() => load('backup', ['--stanza=main', '--buffer-size=lots'])).message).toContain('expected a size such as 512KB or 1MiB');
      expect(thrown(() => load('backup', ['--stanza=main', '--archive-timeout=1m'])).message).toContain('expected seconds');
      expect(thrown(() => load('backup', ['--stanza=main', '--online=maybe'])).message).toContain('expected y or n');
      expect(thrown(() => load('restore', ['--stanza=main', '--recovery-option=novalue'])).message).toContain('expected key=value');
      expect(thrown(() => load('backup', ['--stanza=main'], { OPENRDS_COMPRESS_LEVEL: 'x' }))).toBeInstanceOf(OptionInvalidError);
      fs.appendFileSync(conf, '\n[main]\nprocess-max=zero\n');
      expect(thrown(() => load('restore', ['--stanza=main'])).message).toContain("'zero' is not valid for option 'process-max'");
    });

    it('accepts only stanza names that are safe as a path and a section name', () => {
      for (const bad of ['../etc', 'a/b', 'a:b', '-x', '']) {
        expect(thrown(() => load('backup', [`--stanza=${bad}`]))).toBeInstanceOf(OptionInvalidError);
      }
      expect(load('backup', ['--stanza=pg-17.main_1']).stanza).toBe('pg-17.main_1');
    });
  });

  describe('secrets', () => {
    it('refuses a secret on the command line and points to the environment or the file', () => {
      const err = thrown(() => load('backup', ['--stanza=main', '--repo1-cipher-pass=x']));
      expect(err).toBeInstanceOf(OptionInvalidError);
      expect(err.message).toBe("option 'repo1-cipher-pass' is a secret and not allowed on the command line");
      expect(err.hint).toBe('set it in the config file or in OPENRDS_REPO1_CIPHER_PASS');
    });

    it('refuses a file holding a secret that group or others may read, naming the secret and the mode', () => {
      fs.chmodSync(conf, 0o640);
      const err = thrown(() => load('backup', ['--stanza=main']));
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe(`config file '${conf}' holds the secret 'repo1-cipher-pass' but group or others may read it (mode 0640)`);
      expect(err.hint).toContain(`chmod 600 '${conf}'`);
      // A readable file without secrets is fine.
      fs.writeFileSync(conf, '[global]\nprocess-max=2\n', { mode: 0o644 });
      fs.chmodSync(conf, 0o644);
      expect(load('backup', ['--stanza=main']).int('process-max')).toBe(2);
    });

    it('reads a secret from the file or the environment and never shows it', () => {
      const c = load('backup', ['--stanza=main']);
      expect(c.str('repo1-cipher-pass')).toBe('s3cret-pass');
      expect(c.toSafeRecord()['repo1-cipher-pass']).toBe('<redacted>');
      expect(JSON.stringify(c.toSafeRecord())).not.toContain('s3cret-pass');
      const e = load('backup', ['--stanza=main'], { OPENRDS_REPO1_CIPHER_PASS: 'env-pass-42' });
      expect([e.str('repo1-cipher-pass'), e.source('repo1-cipher-pass')]).toEqual(['env-pass-42', 'env']);
      const seen: string[] = [];
      const stop = logSubscribe((r) => seen.push(r.message));
      log.info('passes s3cret-pass and env-pass-42');
      stop();
      expect(seen).toEqual(['passes <redacted> and <redacted>']);
    });
  });

  describe('misplaced and unknown options', () => {
    it('names an unknown option with a did-you-mean hint', () => {
      const err = thrown(() => load('backup', ['--stanza=main', '--proces-max=2']));
      expect(err).toBeInstanceOf(OptionInvalidError);
      expect(err.message).toBe("invalid option 'proces-max'");
      expect(err.hint).toBe("did you mean 'process-max'? see --help");
      expect(thrown(() => load('backup', ['--stanza=main', '--no-such-thing-at-all'])).hint).toBe('see --help for the options');
    });

    it('names the command that does not take an option', () => {
      const err = thrown(() => load('info', ['--target=x']));
      expect([err.constructor, err.message, err.hint]).toEqual([OptionInvalidError, "option 'target' is not valid for command 'info'", "see 'help info'"]);
    });

    it('refuses a command-line-only option in the file, and a stanza option in a global section', () => {
      fs.writeFileSync(conf, '[global]\ntarget=x\n');
      const cli = thrown(() => load('info', []));
      expect([cli.constructor, cli.message]).toEqual([ConfigError, `option 'target' in config file '${conf}' is only allowed on the command line`]);
      fs.writeFileSync(conf, '[global:restore]\npg1-path=/pg\n');
      const stanza = thrown(() => load('info', []));
      expect([stanza.constructor, stanza.message, stanza.hint])
        .toEqual([ConfigError, `option 'pg1-path' in section [global:restore] of config file '${conf}' is a stanza option`, 'move it to a [<stanza>] section']);
    });

    it('warns about, and ignores, unknown options and commands in the file (programs may be upgraded one at a time)', () => {
      fs.writeFileSync(conf, '[global]\nrepo1-pth=/x\nfuture-option=1\n[global:bakup]\nprocess-max=3\n[global:info]\nprocess-max=5\n[main]\npg1-path=/pg\n');
      const c = load('backup', ['--stanza=main']);
      expect([c.str('repo1-path'), c.int('process-max')]).toEqual(['/var/lib/openrds', 1]);
      expect(warnings).toEqual([
        `config file '${conf}' contains invalid option 'repo1-pth' in section [global]: ignored\nHINT: did you mean 'repo1-path'? see --help`,
        `config file '${conf}' contains invalid option 'future-option' in section [global]: ignored\nHINT: see --help for the options`,
        `config file '${conf}' section [global:bakup] names an unknown command 'bakup': ignored`,
        `config file '${conf}' sets option 'process-max' in section [global:info], which command 'info' does not take: ignored`,
      ]);
    });

    it('reports an unreadable line with its number', () => {
      fs.writeFileSync(conf, '[global]\nrepo1-path\n');
      expect(thrown(() => load('info', [])).message).toBe(`unable to read line 2 of config file '${conf}': expected key=value`);
    });
  });

  describe('required options', () => {
    it('requires the stanza of commands that act on one', () => {
      const err = thrown(() => load('backup', []));
      expect([err.constructor, err.message, err.hint]).toEqual([OptionRequiredError, 'backup command requires option: stanza', 'add --stanza=...']);
      expect(load('info', []).stanza).toBeUndefined();
    });

    it('requires pg1-path of the agent and says where to set it', () => {
      const err = thrown(() => load('agent', ['--stanza=other']));
      expect([err.constructor, err.message]).toEqual([OptionRequiredError, 'agent command requires option: pg1-path']);
      expect(err.hint).toBe('set pg1-path in the config file (section [other]), OPENRDS_PG1_PATH or --pg1-path');
      expect(load('agent', ['--stanza=main']).str('pg1-path')).toBe('/pg/main');
    });

    it('reports an unset option read by a typed accessor as required, and a type mismatch as a bug', () => {
      const c = load('backup', ['--stanza=main']);
      expect(thrown(() => c.bool('checksum-page'))).toBeInstanceOf(OptionRequiredError);
      expect(thrown(() => c.int('stanza'))).toBeInstanceOf(AssertError);
      expect(thrown(() => c.bool('process-max'))).toBeInstanceOf(AssertError);
      expect(thrown(() => c.get('no-such-option'))).toBeInstanceOf(AssertError);
    });
  });

  it('forwards only what was set on the command line or in the environment', () => {
    const c = load('backup', ['--stanza=main', '--type=full', '--exclude=x'], { OPENRDS_START_FAST: 'y' });
    expect(c.explicit()).toEqual({ config: conf, stanza: 'main', type: 'full', exclude: ['x'], 'start-fast': true });
  });
});

describe('optionTable', () => {
  it('has one definition per name, valid defaults, and secrets that are never required on the command line', () => {
    const names = optionTable.map((o) => o.name);
    expect(new Set(names).size).toBe(names.length);
    for (const o of optionTable) {
      if (o.type === 'enum' && o.default !== undefined) expect(o.allowed).toContain(o.default);
      if (o.secret) expect(o.section).not.toBe('command-line');
    }
  });
});

describe('commandHelp', () => {
  it('lists the commands of a program', () => {
    const h = commandHelp('openrds-admin');
    expect(h).toContain('Usage: openrds-admin <command> [options]');
    expect(h).toMatch(/\n {4}restore +restore a backup/);
    expect(h).not.toContain('archive-push');
  });

  it('lists every option of a command with its values, default and requiredness', () => {
    const h = commandHelp('openrds-admin', 'restore');
    expect(h).toContain('openrds-admin restore [options]');
    expect(h).toMatch(/--target-action +action when the target is reached \[pause\|promote\|shutdown\] \(default: pause\)/);
    expect(h).toContain('(required)');
    expect(h).toContain('--repo1-cipher-pass');
    expect(h).toContain('(secret: config file or environment only)');
    expect(h).not.toContain('--tls-server-port');
    expect(commandHelp('openrds-agent', 'archive-get')).toContain('openrds-agent archive-get %f "%p" [options]');
    expect(commandHelp('openrds-admin', 'backup')).toMatch(/--buffer-size +.*\(default: 1MiB\)/);
  });

  it('keeps two spaces at least between every name and its text, however long the name', () => {
    for (const c of commandTable) {
      for (const h of [commandHelp(c.program), commandHelp(c.program, c.name)]) {
        for (const line of h.split('\n').filter((l) => /^ {4}\S/.test(l))) expect(line).toMatch(/^ {4}\S+(?: \S+)* {2,}\S/);
      }
    }
    // The longest option name, which ran into its text before.
    expect(commandHelp('openrds-agent', 'archive-command')).toMatch(/--repo-host-ssh-known-hosts {2,}known_hosts file/);
  });
});
