import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInterface } from 'node:readline';
import { CryptoError, FileMissingError, FileReadError, FormatError } from '../error';
import { log } from '../log';
import type { Storage } from '../storage/storage';

/*
 * Info files (archive.info, backup.info) and manifests are JSON documents that carry their own
 * checksum and are written twice (key, then key.copy), so that one damaged copy never loses a
 * stanza or a backup.
 *
 * The checksum is the sha256 of the canonical JSON of the content without its checksum field:
 * object keys sorted at every level, no white space. The file itself is canonical JSON laid out one
 * top-level entry per line, and a top-level array one element per line, with "checksum" last:
 *
 *   {
 *   "backup":{"label":"20261124-153148F",...},
 *   "files":[
 *   {"mode":384,"mtime":1764000000,"name":"pg_data/PG_VERSION",...},
 *   ...
 *   ],
 *   "version":1,
 *   "checksum":"5f1c..."
 *   }
 *
 * so that a manifest with millions of files is written and read a line at a time and never needs
 * one string of its whole text (V8 strings stop at 512 MiB). Any other valid JSON layout loads too,
 * when it fits in a string.
 */

/** JSON with object keys sorted at every level and no white space: the same content always hashes the same. */
export function canonicalJson(value: unknown): string {
  const text = canonicalValue(value, false);
  if (text === undefined) throw new FormatError(`unable to serialize a value of type '${typeof value}' as JSON`);
  return text;
}

/** The value JSON.stringify would serialize: the result of toJSON() where there is one. */
function jsonValueOf(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return (value as { toJSON: () => unknown }).toJSON();
  }
  return value;
}

/** True for what JSON.stringify leaves out of an object (undefined, functions, symbols). */
function isOmitted(value: unknown): boolean {
  const v = jsonValueOf(value);
  return v === undefined || typeof v === 'function' || typeof v === 'symbol';
}

/** Canonical text of a value, or undefined where JSON.stringify would omit it (undefined, functions, symbols). */
function canonicalValue(input: unknown, inArray: boolean): string | undefined {
  const value = jsonValueOf(input);
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return inArray ? 'null' : undefined;
  if (typeof value === 'bigint') throw new FormatError('unable to serialize a bigint as JSON');
  if (Array.isArray(value)) return `[${value.map((v) => canonicalValue(v, true)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const parts: string[] = [];
    for (const k of Object.keys(obj).sort()) {
      const v = canonicalValue(obj[k], false);
      if (v !== undefined) parts.push(`${JSON.stringify(k)}:${v}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The top-level entries of a document that go into the file and the checksum, in key order. */
function documentEntries(content: object): [string, unknown][] {
  if (content === null || typeof content !== 'object' || Array.isArray(content)) {
    throw new FormatError('an info file holds a JSON object');
  }
  const obj = content as Record<string, unknown>;
  return Object.keys(obj).filter((k) => k !== 'checksum').sort()
    .map((k): [string, unknown] => [k, obj[k]])
    .filter(([, v]) => !isOmitted(v));
}

/**
 * The text of an info file up to its checksum line, in pieces of about 64 KiB, feeding the
 * canonical JSON of the document to `hash` on the way: each value is serialized once for both.
 */
function* documentPieces(entries: [string, unknown][], hash: Hash): Generator<string> {
  let piece = '{\n';
  hash.update('{');
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i]!;
    const keyText = `${JSON.stringify(k)}:`;
    hash.update(i > 0 ? `,${keyText}` : keyText);
    const value = jsonValueOf(v);
    if (Array.isArray(value) && value.length > 0) {
      hash.update('[');
      piece += `${keyText}[\n`;
      for (let j = 0; j < value.length; j++) {
        const text = canonicalValue(value[j], true)!;
        hash.update(j > 0 ? `,${text}` : text);
        piece += j < value.length - 1 ? `${text},\n` : `${text}\n`;
        if (piece.length >= 64 * 1024) { yield piece; piece = ''; }
      }
      hash.update(']');
      piece += '],\n';
    } else {
      const text = canonicalValue(value, false)!;
      hash.update(text);
      piece += `${keyText}${text},\n`;
    }
    if (piece.length >= 64 * 1024) { yield piece; piece = ''; }
  }
  hash.update('}');
  yield piece;
}

/** The whole text of an info file: the checksum line comes last, once the hash has seen everything. */
function* infoFileText(entries: [string, unknown][]): Generator<string> {
  const hash = createHash('sha256');
  yield* documentPieces(entries, hash);
  yield `"checksum":${JSON.stringify(hash.digest('hex'))}\n}\n`;
}

/** sha256 of the canonical JSON of the content without its checksum field. */
export function infoChecksum(content: object): string {
  const hash = createHash('sha256');
  for (const piece of documentPieces(documentEntries(content), hash)) void piece;
  return hash.digest('hex');
}

/** Writes an info file and then its .copy, each carrying the checksum of the content. */
export async function infoFileSave(storage: Storage, key: string, content: object): Promise<void> {
  const entries = documentEntries(content);
  // Both from memory, so that damage to the main file's bytes cannot reach the copy. Main first:
  // while the copy is being written, the main file already holds the new content.
  for (const target of [key, `${key}.copy`]) {
    await pipeline(Readable.from(infoFileText(entries), { objectMode: false }), storage.newWrite(target));
  }
}

/** Thrown by the line reader when a file is not in the line layout: the whole-text parser gets a go. */
class LayoutError extends Error {}

interface InfoFileParsed {
  doc: Record<string, unknown>;
  /**
   * sha256 of the lines as they are, taken to be canonical JSON (as written by infoFileSave):
   * equal to the stored checksum, it proves the content without serializing it again.
   */
  linesChecksum?: string;
}

/** Parses a file in the line layout, a line at a time. */
async function infoFileParseLines(storage: Storage, key: string): Promise<InfoFileParsed> {
  const lines = createInterface({ input: await storage.newRead(key), crlfDelay: Infinity });
  const doc: Record<string, unknown> = {};
  const hash = createHash('sha256');
  let state: 'start' | 'top' | 'array' | 'end' = 'start';
  let array: unknown[] = [];
  let entriesHashed = 0;
  let lineNo = 0;
  const parse = (text: string): unknown => {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new LayoutError(`line ${lineNo}: ${(err as Error).message}`);
    }
  };
  for await (const raw of lines) {
    lineNo++;
    const line = raw.endsWith(',') ? raw.slice(0, -1) : raw;
    if (state === 'start') {
      if (raw !== '{') throw new LayoutError("line 1 is not '{'");
      hash.update('{');
      state = 'top';
    } else if (state === 'top') {
      if (raw === '}') {
        hash.update('}');
        state = 'end';
        continue;
      }
      const arrayStart = /^("(?:[^"\\]|\\.)*"):\[$/.exec(line);
      if (arrayStart) {
        array = [];
        doc[parse(arrayStart[1]!) as string] = array;
        hash.update(entriesHashed++ > 0 ? `,${line}` : line);
        state = 'array';
      } else {
        const entry = parse(`{${line}}`) as Record<string, unknown>;
        const names = Object.keys(entry);
        if (names.length !== 1) throw new LayoutError(`line ${lineNo} is not one entry`);
        Object.assign(doc, entry);
        if (names[0] !== 'checksum') hash.update(entriesHashed++ > 0 ? `,${line}` : line);
      }
    } else if (state === 'array') {
      if (line === ']') {
        hash.update(']');
        state = 'top';
      } else {
        hash.update(array.length > 0 ? `,${line}` : line);
        array.push(parse(line));
      }
    } else if (raw.trim() !== '') {
      throw new LayoutError(`line ${lineNo} follows the closing '}'`);
    }
  }
  if (state !== 'end') throw new LayoutError("the file ends before its closing '}'");
  return { doc, linesChecksum: hash.digest('hex') };
}

/** Parses any JSON layout from the whole text (small files only). */
async function infoFileParseWhole(storage: Storage, key: string): Promise<InfoFileParsed> {
  const text = (await storage.get(key)).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch (err) {
    throw new FormatError(`unable to parse '${key}': ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new FormatError(`'${key}' does not hold a JSON object`);
  return { doc: parsed as Record<string, unknown> };
}

/** Loads one file of an info pair (no fallback to the other): FileMissingError, or FormatError when unparseable or its checksum is wrong. */
export async function infoFileLoadOne<T>(storage: Storage, key: string): Promise<T> {
  let parsed: InfoFileParsed;
  try {
    parsed = await infoFileParseLines(storage, key);
  } catch (err) {
    if (!(err instanceof LayoutError)) throw err;
    parsed = await infoFileParseWhole(storage, key);
  }
  const { doc } = parsed;
  if (typeof doc.checksum !== 'string') throw new FormatError(`'${key}' has no checksum`);
  // Lines that are not canonical (edited by hand, another writer) are checked the slow way.
  if (parsed.linesChecksum !== doc.checksum) {
    const actual = infoChecksum(doc);
    if (doc.checksum !== actual) throw new FormatError(`invalid checksum in '${key}': expected '${doc.checksum}' but found '${actual}'`);
  }
  delete doc.checksum;
  return doc as T;
}

/**
 * Loads an info file, falling back to its .copy (with a warning) when the main file cannot be
 * loaded: missing, unparseable, a wrong checksum, or unreadable. When both fail the error names
 * both files: FileMissingError when both are missing, FormatError when both are missing or
 * damaged, FileReadError otherwise (the repository cannot be read: permissions, I/O errors).
 */
export async function infoFileLoad<T>(storage: Storage, key: string): Promise<T> {
  let mainError: unknown;
  try {
    return await infoFileLoadOne<T>(storage, key);
  } catch (err) {
    mainError = err;
  }
  const copyKey = `${key}.copy`;
  let copyError: unknown;
  try {
    const content = await infoFileLoadOne<T>(storage, copyKey);
    log.warn(`unable to load '${key}' (${messageOf(mainError)}): loaded '${copyKey}' instead`);
    return content;
  } catch (err) {
    copyError = err;
  }
  if (mainError instanceof FileMissingError && copyError instanceof FileMissingError) {
    throw new FileMissingError(`unable to load '${key}' or '${copyKey}': both are missing`);
  }
  const message = `unable to load '${key}' (${messageOf(mainError)}) or '${copyKey}' (${messageOf(copyError)})`;
  const isDamage = (err: unknown): boolean => err instanceof FileMissingError || err instanceof FormatError;
  // A passphrase or key problem is the same for both copies: say that, not "unreadable".
  if (mainError instanceof CryptoError && (copyError instanceof CryptoError || copyError instanceof FileMissingError)) {
    throw new CryptoError(`unable to load '${key}': ${mainError.message}`, mainError.hint ? { hint: mainError.hint } : {});
  }
  if (isDamage(mainError) && isDamage(copyError)) {
    throw new FormatError(message, { hint: 'both copies are damaged: restore them from a copy of the repository' });
  }
  throw new FileReadError(message, { cause: isDamage(mainError) ? copyError : mainError });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
