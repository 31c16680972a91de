import { createHash } from 'node:crypto';
import { FileMissingError, FormatError } from '../error';
import { log } from '../log';
import type { Storage } from '../storage/storage';

/** JSON with object keys sorted at every level: the same content always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj).filter((k) => obj[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 of the canonical JSON of the content (without its checksum field). */
export function infoChecksum(content: object): string {
  const { checksum: _ignored, ...rest } = content as Record<string, unknown>;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** Writes an info file and then its .copy, each carrying its own checksum. */
export async function infoFileSave(storage: Storage, key: string, content: object): Promise<void> {
  const { checksum: _old, ...rest } = content as Record<string, unknown>;
  const text = `${JSON.stringify({ ...rest, checksum: infoChecksum(rest) }, null, 1)}\n`;
  await storage.put(key, text);
  await storage.put(`${key}.copy`, text);
}

/** Loads one copy of an info file (no fallback); throws FileMissingError or FormatError. */
export async function infoFileLoadOne<T>(storage: Storage, key: string): Promise<T> {
  const text = (await storage.get(key)).toString('utf8');
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new FormatError(`unable to parse '${key}': ${(err as Error).message}`);
  }
  if (typeof parsed.checksum !== 'string' || parsed.checksum !== infoChecksum(parsed)) {
    throw new FormatError(`invalid checksum in '${key}'`);
  }
  const { checksum: _c, ...content } = parsed;
  return content as T;
}

/**
 * Loads an info file, falling back to its .copy when the main file is missing or damaged:
 * one bad copy never loses a stanza or a backup.
 */
export async function infoFileLoad<T>(storage: Storage, key: string): Promise<T> {
  let mainError: Error;
  try {
    return await infoFileLoadOne<T>(storage, key);
  } catch (err) {
    mainError = err as Error;
  }
  try {
    const content = await infoFileLoadOne<T>(storage, `${key}.copy`);
    log.warn(`'${key}' is unusable (${mainError.message}): loaded '${key}.copy'`);
    return content;
  } catch (copyError) {
    if (mainError instanceof FileMissingError && copyError instanceof FileMissingError) {
      throw new FileMissingError(`unable to load '${key}' or '${key}.copy': both are missing`);
    }
    throw new FormatError(`unable to load '${key}' (${mainError.message}) or '${key}.copy' (${(copyError as Error).message})`,
      { hint: 'the repository metadata is damaged: restore it from another copy of the repository' });
  }
}
