import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { AssertError } from './error';
import { log, logFormatLine, logInit, logRedact, logRedactText, logSubscribe, type LogRecord } from './log';

/** A console stream whose text the test can read. */
function consoleCapture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => { text += d.toString(); });
  return { stream, text: () => text };
}

const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} $/;

describe('log', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'log-')); });
  afterEach(() => {
    logInit({ process: 'test', levelConsole: 'off' });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('formats lines for humans, with the continuation lines of a record indented', () => {
    expect(logFormatLine('info', 'backup start', false)).toBe('P00   INFO: backup start');
    expect(logFormatLine('warn', 'x', true, new Date(2026, 10, 24, 15, 31, 48, 123))).toBe('2026-11-24 15:31:48.123 P00   WARN: x');
    expect(logFormatLine('error', "[37]: backup command requires option: stanza\nHINT: add --stanza=...", false))
      .toBe("P00  ERROR: [37]: backup command requires option: stanza\n            HINT: add --stanza=...");
  });

  it('shows on the console only the levels up to its own, with an optional timestamp', async () => {
    const out = consoleCapture();
    logInit({ process: 'test', levelConsole: 'detail', consoleStream: out.stream, timestamp: true });
    log.trace('t');
    log.debug('d');
    log.detail('de');
    log.info('i');
    log.warn('w');
    log.error('e');
    await new Promise((r) => setImmediate(r));
    const lines = out.text().trimEnd().split('\n');
    expect(lines.map((l) => l.slice(24))).toEqual(['P00 DETAIL: de', 'P00   INFO: i', 'P00   WARN: w', 'P00  ERROR: e']);
    for (const l of lines) expect(l.slice(0, 24)).toMatch(TIMESTAMP);
  });

  it('logs nothing on the console at off, and renders meta as JSON after the message', async () => {
    const off = consoleCapture();
    logInit({ process: 'test', levelConsole: 'off', consoleStream: off.stream });
    log.error('hidden');
    const on = consoleCapture();
    logInit({ process: 'test', levelConsole: 'info', consoleStream: on.stream });
    log.info('copied', { files: 3, err: new Error('boom'), big: 10n });
    await new Promise((r) => setImmediate(r));
    expect(off.text()).toBe('');
    expect(on.text()).toBe('P00   INFO: copied {"files":3,"err":"Error: boom","big":"10"}\n');
  });

  it('redacts registered secrets in lines, meta and subscribed records', async () => {
    const out = consoleCapture();
    logInit({ process: 'test', levelConsole: 'info', consoleStream: out.stream });
    const seen: string[] = [];
    const unsubscribe = logSubscribe((r) => seen.push(r.message));
    logRedact('hunter2');
    log.warn('password hunter2 leaked?', { pass: 'hunter2' });
    unsubscribe();
    await new Promise((r) => setImmediate(r));
    expect(out.text()).toBe('P00   WARN: password <redacted> leaked? {"pass":"<redacted>"}\n');
    expect(seen).toEqual(['password <redacted> leaked? {"pass":"<redacted>"}']);
    expect(logRedactText('a hunter2 b')).toBe('a <redacted> b');
  });

  it('tees every record to subscribers whatever the levels, until they unsubscribe, and survives one that throws', () => {
    logInit({ process: 'test', levelConsole: 'off' });
    const seen: LogRecord[] = [];
    const before = Date.now();
    const broken = logSubscribe(() => { throw new Error('client gone'); });
    const unsubscribe = logSubscribe((r) => seen.push(r));
    log.trace('fine detail');
    log.error('bad');
    unsubscribe();
    broken();
    log.error('after unsubscribe');
    expect(seen.map((r) => `${r.level}:${r.message}`)).toEqual(['trace:fine detail', 'error:bad']);
    expect(seen[0]!.time).toBeGreaterThanOrEqual(before);
  });

  it('appends to <log-path>/<stanza>-<command>.log synchronously, timestamped, at its own level', () => {
    logInit({ process: 'openrds-agent', command: 'archive-push', stanza: 'main', levelConsole: 'off', levelFile: 'debug', logPath: path.join(dir, 'sub') });
    log.debug('first');
    log.trace('not in the file');
    const file = path.join(dir, 'sub', 'main-archive-push.log');
    // Read before anything is awaited: a line must be on disk when log returns (process.exit may follow).
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines.slice(0, 2)).toEqual(['', '-------------------PROCESS START-------------------']);
    expect(lines[2]!.slice(0, 24)).toMatch(TIMESTAMP);
    expect(lines.slice(2).map((l) => l.slice(24))).toEqual(['P00  DEBUG: first', '']);
    logInit({ process: 'openrds-agent', command: 'archive-push', stanza: 'main', levelConsole: 'off', levelFile: 'info', logPath: path.join(dir, 'sub') });
    log.info('second run');
    expect(fs.readFileSync(file, 'utf8')).toMatch(/P00  DEBUG: first\n\n-+PROCESS START-+\n.{24}P00   INFO: second run\n$/);
  });

  it('names the file after the process without a stanza, and writes none at off', () => {
    logInit({ process: 'openrds-repo-server', command: 'repo-server', levelConsole: 'off', levelFile: 'info', logPath: dir });
    log.info('listening');
    expect(fs.readFileSync(path.join(dir, 'openrds-repo-server.log'), 'utf8')).toContain('INFO: listening');
    logInit({ process: 'other', levelConsole: 'off', levelFile: 'off', logPath: dir });
    log.error('x');
    expect(fs.existsSync(path.join(dir, 'other.log'))).toBe(false);
  });

  it('goes on without a file log when the log path cannot be written, and says so', async () => {
    const out = consoleCapture();
    fs.writeFileSync(path.join(dir, 'a-file'), '');
    logInit({ process: 'p', levelConsole: 'warn', consoleStream: out.stream, levelFile: 'info', logPath: path.join(dir, 'a-file', 'logs') });
    log.warn('still logging');
    await new Promise((r) => setImmediate(r));
    expect(out.text()).toContain(`P00   WARN: unable to open log file '${path.join(dir, 'a-file', 'logs', 'p.log')}'`);
    expect(out.text()).toContain('HINT: check log-path, or set log-level-file=off');
    expect(out.text()).toContain('P00   WARN: still logging');
  });

  it('refuses an unknown level', () => {
    expect(() => logInit({ process: 'p', levelConsole: 'warning' })).toThrow(AssertError);
  });
});
