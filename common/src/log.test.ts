import { PassThrough } from 'node:stream';
import { log, logFormatLine, logInit, logRedact, logSubscribe } from './log';

describe('log', () => {
  afterEach(() => logInit({ process: 'test', levelConsole: 'off' }));

  it('formats lines for humans', () => {
    expect(logFormatLine('info', 'backup start', false)).toBe('P00   INFO: backup start');
    expect(logFormatLine('warn', 'x', true, new Date(2026, 10, 24, 15, 31, 48, 123))).toBe('2026-11-24 15:31:48.123 P00   WARN: x');
  });

  it('filters by level, redacts secrets, and tees records to subscribers', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => { text += d.toString(); });
    logInit({ process: 'test', levelConsole: 'warn', consoleStream: out, timestamp: false });
    const seen: string[] = [];
    const unsubscribe = logSubscribe((r) => seen.push(`${r.level}:${r.message}`));
    logRedact('hunter2');
    log.info('not shown');
    log.warn('password hunter2 leaked?');
    log.error('bad');
    unsubscribe();
    log.error('after unsubscribe');
    await new Promise((r) => setImmediate(r));
    expect(text).toBe('P00   WARN: password <redacted> leaked?\nP00  ERROR: bad\nP00  ERROR: after unsubscribe\n');
    expect(seen).toEqual(['info:not shown', 'warn:password <redacted> leaked?', 'error:bad']);
  });
});
