import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
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

/**
 * A value whose canonical JSON is known already, serialized as that text: a record written many
 * times (the files of a backup's resumable record, saved again as the backup goes) is serialized
 * once, not at every save.
 */
export class CanonicalJson {
  readonly text: string;
  constructor(value: unknown) {
    this.text = canonicalJson(value);
    // Made by concatenation, the text is a tree of the pieces (about 450 bytes for a backup file's
    // entry): reading a character makes V8 flatten it into one string (about 190), and the
    // pieces become garbage. Tens of thousands of these stay alive for a whole backup.
    this.text.charCodeAt(0);
  }
}

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

/** Keys of one object shape: their order as created, and sorted with their JSON text. */
interface Shape { keys: string[]; sorted: { key: string; text: string }[] }
/** The last few object shapes seen: the records of a manifest share a handful, so keys are sorted once per shape, not per record. */
const shapes: Shape[] = [];
const SHAPES_KEPT = 8;

/** True when the object's own enumerable keys are `keys`, in that order (`for...in` walks them without making an array). */
function shapeIs(obj: object, keys: string[]): boolean {
  let i = 0;
  for (const k in obj) {
    if (keys[i] !== k) return false;
    i++;
  }
  return i === keys.length;
}

/** The object's keys sorted, with their JSON text (`"key":`). */
function sortedKeysOf(obj: Record<string, unknown>): { key: string; text: string }[] {
  for (const shape of shapes) if (shapeIs(obj, shape.keys)) return shape.sorted;
  const keys = Object.keys(obj);
  const shape = { keys, sorted: [...keys].sort().map((key) => ({ key, text: `${JSON.stringify(key)}:` })) };
  // An object with inherited enumerable keys never matches its shape: it is sorted each time (correct, only slower).
  shapes.unshift(shape);
  if (shapes.length > SHAPES_KEPT) shapes.pop();
  return shape.sorted;
}

/** Canonical text of a value, or undefined where JSON.stringify would omit it (undefined, functions, symbols). */
function canonicalValue(input: unknown, inArray: boolean): string | undefined {
  if (input instanceof CanonicalJson) return input.text;
  const value = jsonValueOf(input);
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return inArray ? 'null' : undefined;
  if (typeof value === 'bigint') throw new FormatError('unable to serialize a bigint as JSON');
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) text += i > 0 ? `,${canonicalValue(value[i], true)!}` : canonicalValue(value[i], true)!;
    return `${text}]`;
  }
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    let text = '{';
    for (const { key, text: keyText } of sortedKeysOf(obj)) {
      const v = canonicalValue(obj[key], false);
      if (v !== undefined) text += text.length > 1 ? `,${keyText}${v}` : `${keyText}${v}`;
    }
    return `${text}}`;
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
    if (i > 0) hash.update(',');
    hash.update(keyText);
    const value = jsonValueOf(v);
    if (Array.isArray(value) && value.length > 0) {
      hash.update('[');
      piece += `${keyText}[\n`;
      for (let j = 0; j < value.length; j++) {
        const text = canonicalValue(value[j], true)!;
        if (j > 0) hash.update(',');
        hash.update(text);
        piece += j < value.length - 1 ? `${text},\n` : `${text}\n`;
        if (piece.length >= PIECE) { yield piece; piece = ''; }
      }
      hash.update(']');
      piece += '],\n';
    } else {
      const text = canonicalValue(value, false)!;
      hash.update(text);
      piece += `${keyText}${text},\n`;
    }
    if (piece.length >= PIECE) { yield piece; piece = ''; }
  }
  hash.update('}');
  yield piece;
}
const PIECE = 64 * 1024;

/** The whole text of an info file: the checksum line comes last, once the hash has seen everything. */
function* infoFileText(entries: [string, unknown][]): Generator<Buffer> {
  const hash = createHash('sha256');
  for (const piece of documentPieces(entries, hash)) yield Buffer.from(piece, 'utf8');
  yield Buffer.from(`"checksum":${JSON.stringify(hash.digest('hex'))}\n}\n`, 'utf8');
}

/** sha256 of the canonical JSON of the content without its checksum field. */
export function infoChecksum(content: object): string {
  const hash = createHash('sha256');
  for (const piece of documentPieces(documentEntries(content), hash)) void piece;
  return hash.digest('hex');
}

/**
 * Writes an info file and its .copy, each carrying the checksum of the content. Both get each
 * piece of text from memory as it is serialized, so that damage to the main file's bytes cannot
 * reach the copy, and no more than a piece is held (a manifest of 62,000 files is 15 MB of text,
 * which was kept whole for the copy at the peak of a backup). The main file commits first: from
 * the moment the copy commits, the main file holds the same content.
 */
export async function infoFileSave(storage: Storage, key: string, content: object): Promise<void> {
  const entries = documentEntries(content);
  const main = storage.newWrite(key);
  let copy: Writable | undefined;
  // Rejects with the first error of either write; handled here so that an error arriving while
  // nothing waits on it is not unhandled.
  let fail: (err: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => { fail = reject; });
  failed.catch(() => undefined);
  main.on('error', fail);
  try {
    copy = storage.newWrite(`${key}.copy`);
    copy.on('error', fail);
    const both = [main, copy];
    for (const piece of infoFileText(entries)) {
      const full = both.filter((w) => !w.write(piece));
      if (full.length > 0) await Promise.race([failed, Promise.all(full.map((w) => once(w, 'drain')))]);
    }
    for (const w of both) {
      w.end();
      await Promise.race([failed, finished(w)]);
    }
  } catch (err) {
    main.destroy();
    copy?.destroy();
    throw err;
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

const NEWLINE = 0x0a, CR = 0x0d, COMMA = 0x2c;

/**
 * Calls `line` for each line of a stream (without its line break), as bytes: the hash takes
 * them as they are, and only what is parsed becomes a string.
 */
async function linesEach(source: Readable, line: (bytes: Buffer) => void): Promise<void> {
  let held: Buffer[] = [];
  for await (const chunk of source as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const part = chunk.subarray(start, nl);
      if (held.length > 0) { held.push(part); line(Buffer.concat(held)); held = []; } else line(part);
      start = nl + 1;
    }
    if (start < chunk.length) held.push(chunk.subarray(start));
  }
  if (held.length > 0) line(Buffer.concat(held));
}

/** Parses a file in the line layout, a line at a time. */
async function infoFileParseLines(storage: Storage, key: string): Promise<InfoFileParsed> {
  const doc: Record<string, unknown> = {};
  const hash = createHash('sha256');
  // Set in the line callback: declared wide so that the check after it is not narrowed away.
  let state = 'start' as 'start' | 'top' | 'array' | 'end';
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
  const is = (b: Buffer, c: string): boolean => b.length === 1 && b[0] === c.charCodeAt(0);
  await linesEach(await storage.newRead(key), (lineBytes) => {
    lineNo++;
    const raw = lineBytes.length > 0 && lineBytes[lineBytes.length - 1] === CR ? lineBytes.subarray(0, -1) : lineBytes;
    const line = raw.length > 0 && raw[raw.length - 1] === COMMA ? raw.subarray(0, -1) : raw;
    if (state === 'start') {
      if (!is(raw, '{')) throw new LayoutError("line 1 is not '{'");
      hash.update('{');
      state = 'top';
    } else if (state === 'top') {
      if (is(raw, '}')) {
        hash.update('}');
        state = 'end';
        return;
      }
      const text = line.toString('utf8');
      const arrayStart = /^("(?:[^"\\]|\\.)*"):\[$/.exec(text);
      if (arrayStart) {
        array = [];
        doc[parse(arrayStart[1]!) as string] = array;
        if (entriesHashed++ > 0) hash.update(',');
        hash.update(line);
        state = 'array';
      } else {
        const entry = parse(`{${text}}`) as Record<string, unknown>;
        const names = Object.keys(entry);
        if (names.length !== 1) throw new LayoutError(`line ${lineNo} is not one entry`);
        Object.assign(doc, entry);
        if (names[0] !== 'checksum') {
          if (entriesHashed++ > 0) hash.update(',');
          hash.update(line);
        }
      }
    } else if (state === 'array') {
      if (is(line, ']')) {
        hash.update(']');
        state = 'top';
      } else {
        if (array.length > 0) hash.update(',');
        hash.update(line);
        array.push(parse(line.toString('utf8')));
      }
    } else if (raw.some((b) => b !== 0x20 && b !== 0x09)) {
      throw new LayoutError(`line ${lineNo} follows the closing '}'`);
    }
  });
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
