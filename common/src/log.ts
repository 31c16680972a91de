import * as fs from 'node:fs';
import * as path from 'node:path';
import * as winston from 'winston';

/** Log levels, from least to most verbose; 'off' logs nothing. */
export const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'detail', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const winstonLevels: Record<string, number> = { error: 0, warn: 1, info: 2, detail: 3, debug: 4, trace: 5 };

export interface LogRecord {
  level: Exclude<LogLevel, 'off'>;
  message: string;
  time: number;
}

export interface LogInitOptions {
  process: string;             // program name, e.g. 'openrds-agent'
  command?: string;
  stanza?: string | undefined;
  levelConsole?: string;
  levelFile?: string;
  logPath?: string;
  timestamp?: boolean;
  /** Console stream: stderr by default, since stdout carries command output (info text, JSON). */
  consoleStream?: NodeJS.WritableStream;
}

const secrets = new Set<string>();
const subscribers = new Set<(rec: LogRecord) => void>();

/** Registers a secret value: it is replaced by <redacted> in every log line. */
export function logRedact(value: string): void {
  if (value.length > 0) secrets.add(value);
}

function redact(message: string): string {
  let out = message;
  for (const s of secrets) out = out.split(s).join('<redacted>');
  return out;
}

function pad2(n: number): string { return String(n).padStart(2, '0'); }

/** '2026-11-24 15:31:48.123' in local time, as pgBackRest prints it. */
export function logTimestamp(d = new Date()): string {
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** One human-readable line: '<time> P00   INFO: message'. */
export function logFormatLine(level: string, message: string, timestamp: boolean, time = new Date()): string {
  const lvl = `${level.toUpperCase()}:`.padStart(7);
  return `${timestamp ? `${logTimestamp(time)} ` : ''}P00 ${lvl} ${message}`;
}

function formatFor(timestamp: boolean): winston.Logform.Format {
  return winston.format.printf((info) => logFormatLine(String(info.level), String(info.message), timestamp));
}

function consoleTransport(level: string, timestamp: boolean, stream: NodeJS.WritableStream): winston.transport {
  return new winston.transports.Stream({ stream, level, format: formatFor(timestamp) });
}

let logger = winston.createLogger({
  levels: winstonLevels,
  transports: [consoleTransport('info', false, process.stderr)],
});

/** Sets up console and file logging for a program; callable again (tests). */
export function logInit(opts: LogInitOptions): void {
  const transports: winston.transport[] = [];
  const levelConsole = opts.levelConsole ?? 'info';
  if (levelConsole !== 'off') transports.push(consoleTransport(levelConsole, opts.timestamp ?? false, opts.consoleStream ?? process.stderr));
  const levelFile = opts.levelFile ?? 'off';
  if (levelFile !== 'off' && opts.logPath) {
    fs.mkdirSync(opts.logPath, { recursive: true, mode: 0o750 });
    const base = opts.stanza ? `${opts.stanza}-${opts.command ?? opts.process}` : opts.process;
    transports.push(new winston.transports.File({
      filename: path.join(opts.logPath, `${base}.log`), level: levelFile, format: formatFor(true),
    }));
  }
  const old = logger;
  logger = winston.createLogger({ levels: winstonLevels, transports, silent: transports.length === 0 });
  old.close();
}

/** Receives every log record of this process (the repo-server streams a command's lines to the admin). */
export function logSubscribe(cb: (rec: LogRecord) => void): () => void {
  subscribers.add(cb);
  return () => { subscribers.delete(cb); };
}

function emit(level: LogRecord['level'], message: string): void {
  const text = redact(message);
  logger.log(level, text);
  if (subscribers.size > 0) {
    const rec = { level, message: text, time: Date.now() };
    for (const cb of subscribers) cb(rec);
  }
}

/** The process logger. */
export const log = {
  error: (msg: string): void => emit('error', msg),
  warn: (msg: string): void => emit('warn', msg),
  info: (msg: string): void => emit('info', msg),
  detail: (msg: string): void => emit('detail', msg),
  debug: (msg: string): void => emit('debug', msg),
  trace: (msg: string): void => emit('trace', msg),
};
