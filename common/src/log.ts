import * as fs from 'node:fs';
import * as path from 'node:path';

/** Log levels, from least to most verbose; 'off' logs nothing. */
export const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'detail', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

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

interface Sink { level: number; write(line: string, time: Date): void; close?(): void }

const levelRank = (level: string): number => LOG_LEVELS.indexOf(level as LogLevel);

/** Console lines are written directly: short-lived commands must not pay for loading a logger. */
function consoleSink(level: string, stream: NodeJS.WritableStream): Sink {
  return { level: levelRank(level), write: (line) => { stream.write(`${line}\n`); } };
}

/** The file log goes through winston, loaded only when a file log is asked for. */
function fileSink(level: string, filename: string): Sink {
  const winston = require('winston') as typeof import('winston');
  const logger = winston.createLogger({
    levels: { line: 0 }, level: 'line',
    transports: [new winston.transports.File({ filename, format: winston.format.printf((info) => String(info.message)) })],
  });
  return { level: levelRank(level), write: (line) => { logger.log('line', line); }, close: () => logger.close() };
}

let sinks: { sink: Sink; timestamp: boolean }[] = [{ sink: consoleSink('info', process.stderr), timestamp: false }];

/** Sets up console and file logging for a program; callable again (tests). */
export function logInit(opts: LogInitOptions): void {
  const next: { sink: Sink; timestamp: boolean }[] = [];
  const levelConsole = opts.levelConsole ?? 'info';
  if (levelConsole !== 'off') {
    next.push({ sink: consoleSink(levelConsole, opts.consoleStream ?? process.stderr), timestamp: opts.timestamp ?? false });
  }
  const levelFile = opts.levelFile ?? 'off';
  if (levelFile !== 'off' && opts.logPath) {
    fs.mkdirSync(opts.logPath, { recursive: true, mode: 0o750 });
    const base = opts.stanza ? `${opts.stanza}-${opts.command ?? opts.process}` : opts.process;
    next.push({ sink: fileSink(levelFile, path.join(opts.logPath, `${base}.log`)), timestamp: true });
  }
  for (const s of sinks) s.sink.close?.();
  sinks = next;
}

/** Receives every log record of this process (the repo-server streams a command's lines to the admin). */
export function logSubscribe(cb: (rec: LogRecord) => void): () => void {
  subscribers.add(cb);
  return () => { subscribers.delete(cb); };
}

function emit(level: LogRecord['level'], message: string): void {
  const text = redact(message);
  const rank = levelRank(level);
  const now = new Date();
  for (const { sink, timestamp } of sinks) if (rank <= sink.level) sink.write(logFormatLine(level, text, timestamp, now), now);
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
