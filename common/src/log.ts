import * as fs from 'node:fs';
import * as path from 'node:path';
import { AssertError } from './error';

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
  /** Timestamp console lines (file lines always have one). */
  timestamp?: boolean;
  /** Console stream: stderr by default, since stdout carries command output (info text, JSON). */
  consoleStream?: NodeJS.WritableStream;
}

const secrets = new Set<string>();
const subscribers = new Set<(rec: LogRecord) => void>();

/** Registers a secret value: it is replaced by <redacted> in every log line and error sent over the wire. */
export function logRedact(value: string): void {
  if (value.length > 0) secrets.add(value);
}

/** The text with every registered secret replaced by <redacted>. */
export function logRedactText(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('<redacted>');
  return out;
}

function pad2(n: number): string { return String(n).padStart(2, '0'); }

/** '2026-11-24 15:31:48.123' in local time, as pgBackRest prints it. */
export function logTimestamp(d = new Date()): string {
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/**
 * One human-readable record: '<time> P00   INFO: message'. Continuation lines (a HINT, a stack)
 * are indented under the message, so that every record starts with its own prefix.
 */
export function logFormatLine(level: string, message: string, timestamp: boolean, time = new Date()): string {
  const prefix = `${timestamp ? `${logTimestamp(time)} ` : ''}P00 ${`${level.toUpperCase()}:`.padStart(7)} `;
  return prefix + message.split('\n').join(`\n${' '.repeat(prefix.length)}`);
}

/** A log call's structured extras, rendered after the message. */
function metaText(meta: Record<string, unknown> | undefined): string {
  if (!meta || Object.keys(meta).length === 0) return '';
  return ` ${JSON.stringify(meta, (_k, v: unknown) => (v instanceof Error ? `${v.name}: ${v.message}`
    : typeof v === 'bigint' ? v.toString() : v))}`;
}

interface Sink { level: number; timestamp: boolean; write(text: string): void; close?(): void }

function levelRank(level: string): number {
  const rank = LOG_LEVELS.indexOf(level as LogLevel);
  if (rank < 0) throw new AssertError(`invalid log level '${level}'`);
  return rank;
}

function consoleSink(level: string, timestamp: boolean, stream: NodeJS.WritableStream): Sink {
  return { level: levelRank(level), timestamp, write: (text) => { stream.write(text); } };
}

/**
 * The file log is written synchronously to an O_APPEND descriptor: a line is on disk before
 * the process can exit or crash (the last lines of a failed command matter most), and short
 * processes that append to the same file at once (archive-push) never interleave inside a line.
 * (winston's file transport writes asynchronously and loses the tail on process.exit.)
 */
function fileSink(level: string, filename: string): Sink {
  const fd = fs.openSync(filename, 'a', 0o640);
  fs.writeSync(fd, `\n-------------------PROCESS START-------------------\n`);
  return {
    level: levelRank(level), timestamp: true,
    write: (text) => { fs.writeSync(fd, text); },
    close: () => { fs.closeSync(fd); },
  };
}

// Until logInit: info and above on stderr, so that early warnings (config file) are seen.
let sinks: Sink[] = [consoleSink('info', false, process.stderr)];

/** Sets up console and file logging for a program; callable again (tests, re-configuration). */
export function logInit(opts: LogInitOptions): void {
  const next: Sink[] = [];
  const levelConsole = opts.levelConsole ?? 'info';
  if (levelRank(levelConsole) > 0) next.push(consoleSink(levelConsole, opts.timestamp ?? false, opts.consoleStream ?? process.stderr));
  const levelFile = opts.levelFile ?? 'off';
  let fileFailure: string | undefined;
  if (levelRank(levelFile) > 0 && opts.logPath) {
    const base = opts.stanza ? `${opts.stanza}-${opts.command ?? opts.process}` : opts.process;
    const filename = path.join(opts.logPath, `${base}.log`);
    try {
      fs.mkdirSync(opts.logPath, { recursive: true, mode: 0o750 });
      next.push(fileSink(levelFile, filename));
    } catch (err) {
      // A log directory we cannot write must not stop archiving or a backup: say so and go on.
      fileFailure = `unable to open log file '${filename}': ${(err as Error).message}\nHINT: check log-path, or set log-level-file=off`;
    }
  }
  for (const s of sinks) s.close?.();
  sinks = next;
  if (fileFailure) log.warn(fileFailure);
}

/** Receives every log record of this process, whatever the levels (the repo-server streams a command's lines to the admin). */
export function logSubscribe(cb: (rec: LogRecord) => void): () => void {
  subscribers.add(cb);
  return () => { subscribers.delete(cb); };
}

let inSubscriber = false;

function emit(level: LogRecord['level'], message: string, meta?: Record<string, unknown>): void {
  const text = logRedactText(message + metaText(meta));
  const rank = LOG_LEVELS.indexOf(level);
  const now = new Date();
  for (const sink of sinks) {
    if (rank <= sink.level) sink.write(`${logFormatLine(level, text, sink.timestamp, now)}\n`);
  }
  // A subscriber that logs must not recurse into itself.
  if (subscribers.size > 0 && !inSubscriber) {
    const rec = { level, message: text, time: now.getTime() };
    inSubscriber = true;
    try {
      for (const cb of subscribers) {
        try { cb(rec); } catch { /* a broken subscriber (a gone client) must not fail the command that logs */ }
      }
    } finally {
      inSubscriber = false;
    }
  }
}

/** The process logger. `meta` is rendered as JSON after the message. */
export const log = {
  error: (msg: string, meta?: Record<string, unknown>): void => emit('error', msg, meta),
  warn: (msg: string, meta?: Record<string, unknown>): void => emit('warn', msg, meta),
  info: (msg: string, meta?: Record<string, unknown>): void => emit('info', msg, meta),
  detail: (msg: string, meta?: Record<string, unknown>): void => emit('detail', msg, meta),
  debug: (msg: string, meta?: Record<string, unknown>): void => emit('debug', msg, meta),
  trace: (msg: string, meta?: Record<string, unknown>): void => emit('trace', msg, meta),
};
