import * as fs from 'node:fs';
import * as path from 'node:path';
import { AssertError, ConfigError, OptionInvalidError, OptionRequiredError } from '../error';
import { log, logRedact } from '../log';
import {
  commandTable, optionFind, optionTable, optionValidFor, type CommandName, type OptionDef, type OptionValue,
} from './option-table';

export type OptionSource = 'command-line' | 'env' | 'config' | 'default' | 'unset';

export interface ConfigLoadOptions {
  command: CommandName;
  /** Arguments after the command word: --options and positional args. */
  argv: string[];
  env?: NodeJS.ProcessEnv;
}

/** Sections of an INI file; a key repeated in a section keeps every value in order. */
export type IniSections = Record<string, Record<string, string[]>>;

/**
 * Reads pgBackRest-style INI: [section] headers, key=value lines, '#' and ';' comments. A key
 * repeated in a section accumulates (list and hash options are written that way).
 */
export function iniParse(text: string, file: string): IniSections {
  const out: IniSections = {};
  let section: Record<string, string[]> | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = out[header[1]!.trim()] ??= {};
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ConfigError(`unable to read line ${i + 1} of config file '${file}': expected key=value`);
    if (!section) throw new ConfigError(`option '${line.slice(0, eq).trim()}' in config file '${file}' is outside any section`, { hint: 'put it under [global] or [<stanza>]' });
    const key = line.slice(0, eq).trim();
    (section[key] ??= []).push(line.slice(eq + 1).trim());
  });
  return out;
}

/** OPENRDS_<NAME> for an option name. */
export function optionEnvName(name: string): string {
  return `OPENRDS_${name.toUpperCase().replace(/-/g, '_')}`;
}

/** Closest option name, for "did you mean". */
function optionSuggest(name: string): string | undefined {
  let best: string | undefined, bestScore = Infinity;
  for (const o of optionTable) {
    const d = editDistance(name, o.name);
    if (d < bestScore) { best = o.name; bestScore = d; }
  }
  return bestScore <= 3 ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array.from({ length: b.length }, () => 0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i]![j] = Math.min(dp[i - 1]![j]! + 1, dp[i]![j - 1]! + 1, dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length]![b.length]!;
}

function unknownOptionHint(name: string): string {
  const near = optionSuggest(name);
  return near ? `did you mean '${near}'? see --help` : 'see --help for the options';
}

// pgBackRest reads KB, MB... as powers of 1024, as do we.
const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

/** The default of an option for a command (the same name may default differently per command). */
export function optionDefault(def: OptionDef, command: CommandName): OptionValue | undefined {
  return def.commandDefault?.[command] ?? def.default;
}

/** Parses one raw value for an option; throws OptionInvalidError naming the option. */
export function optionParse(def: OptionDef, raw: string, command: CommandName): OptionValue {
  const shown = def.secret ? '<redacted>' : raw;
  const bad = (why: string): OptionInvalidError => new OptionInvalidError(`'${shown}' is not valid for option '${def.name}': ${why}`,
    { hint: `run 'help ${command}' for the values it takes` });
  const range = (n: number): number => {
    if (def.min !== undefined && n < def.min) throw bad(`below the minimum ${def.min}`);
    if (def.max !== undefined && n > def.max) throw bad(`above the maximum ${def.max}`);
    return n;
  };
  switch (def.type) {
    case 'boolean':
      if (/^(y|yes|true|on|1)$/i.test(raw)) return true;
      if (/^(n|no|false|off|0)$/i.test(raw)) return false;
      throw bad('expected y or n');
    case 'integer':
      if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw bad('expected an integer');
      return range(Number(raw));
    case 'time':
      if (!/^\d+(\.\d+)?$/.test(raw)) throw bad('expected seconds, such as 60 or 0.5');
      return range(Number(raw));
    case 'size': {
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw);
      const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
      if (!m || unit === undefined) throw bad('expected a size such as 512KB or 1MiB');
      const bytes = Math.round(Number(m[1]) * unit);
      if (!Number.isSafeInteger(bytes)) throw bad('too large');
      return range(bytes);
    }
    case 'enum': {
      const allowed = def.commandAllowed?.[command] ?? def.allowed ?? [];
      if (!allowed.includes(raw)) throw bad(`allowed values are ${allowed.join(', ')}`);
      return raw;
    }
    case 'list':
      if (raw === '') throw bad('empty value');
      return [raw];
    case 'hash': {
      const eq = raw.indexOf('=');
      if (eq <= 0) throw bad('expected key=value');
      return { [raw.slice(0, eq)]: raw.slice(eq + 1) };
    }
    default:
      if (raw === '') throw bad('empty value');
      if (def.pattern && !def.pattern.regex.test(raw)) throw bad(`expected ${def.pattern.describe}`);
      return raw;
  }
}

/** Accumulates repeatable options (list, hash), replaces the others. */
function merge(def: OptionDef, prior: OptionValue | undefined, next: OptionValue): OptionValue {
  if (def.type === 'list') return [...((prior as string[] | undefined) ?? []), ...(next as string[])];
  if (def.type === 'hash') return { ...(prior as Record<string, string> | undefined), ...(next as Record<string, string>) };
  return next;
}

interface Setting { value: OptionValue | undefined; source: OptionSource }

/** The resolved options of one command. */
export class Config {
  constructor(
    readonly command: CommandName,
    readonly args: string[],
    private readonly values: Map<string, Setting>,
  ) {}

  get stanza(): string | undefined {
    return this.values.get('stanza')?.value as string | undefined;
  }

  /** The value, or undefined when unset or not an option of this command. */
  get(name: string): OptionValue | undefined {
    if (!optionFind(name)) throw new AssertError(`option '${name}' is not in the option table`);
    return this.values.get(name)?.value;
  }

  private must(name: string): OptionValue {
    const v = this.get(name);
    if (v === undefined) {
      const def = optionFind(name)!;
      throw new OptionRequiredError(`${this.command} command requires option: ${name}`,
        { hint: def.section === 'command-line' ? `add --${name}=...` : `set ${name} in the config file, ${optionEnvName(name)} or --${name}` });
    }
    return v;
  }

  private typed<T>(name: string, isType: (v: OptionValue) => boolean, what: string, v: OptionValue): T {
    // A mismatch is a bug in the caller, not a user error: the parser already typed the value.
    if (!isType(v)) throw new AssertError(`option '${name}' is not ${what} (it is ${optionFind(name)!.type})`);
    return v as T;
  }

  /** The value as text; OptionRequiredError when unset. */
  str(name: string): string { return String(this.must(name)); }
  /** The value as text, or undefined when unset. */
  strOpt(name: string): string | undefined { const v = this.get(name); return v === undefined ? undefined : String(v); }
  /** An integer or size option; OptionRequiredError when unset. */
  int(name: string): number { return this.typed(name, (v) => Number.isInteger(v), 'an integer', this.must(name)); }
  /** A number (integer, size or time) option; OptionRequiredError when unset. */
  num(name: string): number { return this.typed(name, (v) => typeof v === 'number', 'a number', this.must(name)); }
  /** A boolean option; OptionRequiredError when unset. */
  bool(name: string): boolean { return this.typed(name, (v) => typeof v === 'boolean', 'a boolean', this.must(name)); }
  /** A list option, empty when unset. */
  list(name: string): string[] { const v = this.get(name); return v === undefined ? [] : this.typed(name, Array.isArray, 'a list', v); }
  /** A hash option (key=value), empty when unset. */
  hash(name: string): Record<string, string> {
    const v = this.get(name);
    return v === undefined ? {} : this.typed(name, (x) => typeof x === 'object' && !Array.isArray(x), 'a hash', v);
  }

  /** Where the value came from. */
  source(name: string): OptionSource {
    return this.values.get(name)?.source ?? 'unset';
  }

  /** Every option with its value, secrets redacted (for logging). */
  toSafeRecord(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, s] of this.values) {
      if (s.value === undefined) continue;
      out[name] = optionFind(name)?.secret ? '<redacted>' : s.value;
    }
    return out;
  }

  /**
   * Options set on the command line or in the environment, for forwarding a command to the
   * repo-server. Config-file values are left out on purpose: the far side reads its own file,
   * and the client's file must not override the server's settings.
   */
  explicit(): Record<string, OptionValue> {
    const out: Record<string, OptionValue> = {};
    for (const [name, s] of this.values) {
      if ((s.source === 'command-line' || s.source === 'env') && s.value !== undefined) out[name] = s.value;
    }
    return out;
  }
}

interface ArgvOption { name: string; raw: string | undefined; negate: boolean; reset: boolean }

/** Splits argv into option assignments and positional args. */
function argvParse(argv: string[]): { options: ArgvOption[]; args: string[] } {
  const options: ArgvOption[] = [];
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { args.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('--')) {
      // '-stanza=x' is a typo, not a positional argument: archive-push would take it as the WAL path.
      if (/^-[A-Za-z]/.test(a)) throw new OptionInvalidError(`invalid option '${a}'`, { hint: 'options take two dashes, e.g. --stanza=main; see --help' });
      args.push(a);
      continue;
    }
    const body = a.slice(2);
    const eq = body.indexOf('=');
    let name = eq >= 0 ? body.slice(0, eq) : body;
    let raw: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
    let negate = false, reset = false;
    if (!optionFind(name) && name.startsWith('no-') && optionFind(name.slice(3))) { name = name.slice(3); negate = true; }
    else if (!optionFind(name) && name.startsWith('reset-') && optionFind(name.slice(6))) { name = name.slice(6); reset = true; }
    const def = optionFind(name);
    // Booleans never take the next word: '--delta foo' leaves 'foo' positional, as pgBackRest does.
    if (raw === undefined && def && def.type !== 'boolean' && !negate && !reset) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) { raw = next; i++; }
    }
    options.push({ name, raw, negate, reset });
  }
  return { options, args };
}

/** Reads the command line into settings, enforcing the rules of the option table. */
function cliResolve(options: ArgvOption[], command: CommandName): Map<string, Setting> {
  const cli = new Map<string, Setting>();
  for (const o of options) {
    const def = optionFind(o.name);
    if (!def) throw new OptionInvalidError(`invalid option '${o.name}'`, { hint: unknownOptionHint(o.name) });
    if (!optionValidFor(def, command)) {
      throw new OptionInvalidError(`option '${def.name}' is not valid for command '${command}'`, { hint: `see 'help ${command}'` });
    }
    if (def.secret) {
      throw new OptionInvalidError(`option '${def.name}' is a secret and not allowed on the command line`,
        { hint: `set it in the config file or in ${optionEnvName(def.name)}` });
    }
    const repeatable = def.type === 'list' || def.type === 'hash';
    if (!repeatable && cli.has(def.name)) {
      throw new OptionInvalidError(`option '${def.name}' cannot be set more than once`, { hint: `keep one --${def.name}` });
    }
    if ((o.reset || o.negate) && o.raw !== undefined) {
      throw new OptionInvalidError(`option '--${o.reset ? 'reset' : 'no'}-${def.name}' takes no value`);
    }
    if (o.reset) {
      const d = optionDefault(def, command);
      cli.set(def.name, { value: d, source: d === undefined ? 'unset' : 'default' });
      continue;
    }
    let value: OptionValue | undefined;
    if (o.negate) {
      if (def.type === 'boolean') value = false;
      else if (def.type === 'list') value = [];
      else if (def.type === 'hash') value = {};
      else if (def.name === 'config' || optionDefault(def, command) === undefined) value = undefined;
      else {
        // Unsetting an option that has a default would leave the command without a value it needs.
        throw new OptionInvalidError(`option '${def.name}' cannot be negated`, { hint: `use --reset-${def.name} for its default` });
      }
    } else if (o.raw === undefined) {
      if (def.type !== 'boolean') throw new OptionInvalidError(`option '${def.name}' requires a value`, { hint: `--${def.name}=...` });
      value = true;
    } else {
      value = merge(def, cli.get(def.name)?.value, optionParse(def, o.raw, command));
    }
    cli.set(def.name, { value, source: 'command-line' });
  }
  return cli;
}

/** One config file: its sections, checked against the option table. */
function configFileRead(file: string, explicit: boolean): IniSections | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return undefined;
    if (code === 'ENOENT') throw new ConfigError(`config file '${file}' does not exist`, { hint: 'check --config or OPENRDS_CONFIG' });
    throw new ConfigError(`unable to read config file '${file}': ${(err as Error).message}`, { cause: err });
  }
  const sections = iniParse(text, file);
  configFileCheck(sections, file);
  configFileSecretCheck(sections, file);
  return sections;
}

/** A file that holds a secret (a passphrase, a key) must not be readable by group or others. */
function configFileSecretCheck(sections: IniSections, file: string): void {
  const secret = Object.values(sections).flatMap((body) => Object.keys(body)).find((name) => optionFind(name)?.secret);
  if (secret === undefined) return;
  const mode = fs.statSync(file).mode;
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(`config file '${file}' holds the secret '${secret}' but group or others may read it (mode ${(mode & 0o777).toString(8).padStart(4, '0')})`,
      { hint: `chmod 600 '${file}', or move the secret to a 0600 file in the include path or to ${optionEnvName(secret)}` });
  }
}

/**
 * Misplaced options are errors (the file says something it would not do), unknown ones only
 * warnings: the three programs share one file and may not be upgraded at the same time.
 */
function configFileCheck(sections: IniSections, file: string): void {
  const commands = new Set<string>(commandTable.map((c) => c.name));
  for (const [section, body] of Object.entries(sections)) {
    const colon = section.indexOf(':');
    const scope = colon < 0 ? section : section.slice(0, colon);
    const sectionCommand = colon < 0 ? undefined : section.slice(colon + 1);
    if (sectionCommand !== undefined && !commands.has(sectionCommand)) {
      log.warn(`config file '${file}' section [${section}] names an unknown command '${sectionCommand}': ignored`);
      continue;
    }
    for (const key of Object.keys(body)) {
      const def = optionFind(key);
      if (!def) {
        log.warn(`config file '${file}' contains invalid option '${key}' in section [${section}]: ignored\nHINT: ${unknownOptionHint(key)}`);
        continue;
      }
      if (def.section === 'command-line') {
        throw new ConfigError(`option '${key}' in config file '${file}' is only allowed on the command line`, { hint: `pass --${key}=... instead` });
      }
      if (def.section === 'stanza' && scope === 'global') {
        throw new ConfigError(`option '${key}' in section [${section}] of config file '${file}' is a stanza option`,
          { hint: `move it to a [<stanza>] section` });
      }
      if (sectionCommand !== undefined && !optionValidFor(def, sectionCommand as CommandName)) {
        log.warn(`config file '${file}' sets option '${key}' in section [${section}], which command '${sectionCommand}' does not take: ignored`);
      }
    }
  }
}

/** Appends the sections of `more` to `into`: later files come after, so their scalars win. */
function iniMerge(into: IniSections, more: IniSections): void {
  for (const [section, body] of Object.entries(more)) {
    const target = into[section] ??= {};
    for (const [key, values] of Object.entries(body)) (target[key] ??= []).push(...values);
  }
}

/** The *.conf files of an include directory, in name order. */
function configIncludeRead(dir: string, explicit: boolean): IniSections[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.conf')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return [];
    throw new ConfigError(`unable to read config include path '${dir}': ${(err as Error).message}`,
      { hint: 'check --config-include-path or OPENRDS_CONFIG_INCLUDE_PATH', cause: err });
  }
  return names.map((n) => configFileRead(path.join(dir, n), true)!);
}

/**
 * Resolves every option of a command. Precedence: command line > OPENRDS_* environment >
 * config file ([stanza:command] > [stanza] > [global:command] > [global]) > default.
 * The default config file may be missing; one named by --config or OPENRDS_CONFIG may not.
 */
export function configLoad(opts: ConfigLoadOptions): Config {
  const { command } = opts;
  const env = opts.env ?? process.env;
  const parsed = argvParse(opts.argv);
  const cli = cliResolve(parsed.options, command);

  const envCache = new Map<string, OptionValue | undefined>();
  const envValue = (def: OptionDef): OptionValue | undefined => {
    if (envCache.has(def.name)) return envCache.get(def.name);
    const raw = env[optionEnvName(def.name)];
    let value: OptionValue | undefined;
    if (raw !== undefined && (def.type === 'list' || def.type === 'hash')) {
      // Several values in one variable are ':'-separated, as pgBackRest reads them.
      for (const part of raw.split(':').filter((x) => x !== '')) value = merge(def, value, optionParse(def, part, command));
    } else if (raw !== undefined) {
      value = optionParse(def, raw, command);
    }
    envCache.set(def.name, value);
    return value;
  };
  /** Command line (set, negated or reset) first, then environment, for the options that pick the files. */
  const early = (name: string): { value: OptionValue | undefined; given: boolean } => {
    const c = cli.get(name);
    if (c) return { value: c.value, given: c.source === 'command-line' };
    const e = envValue(optionFind(name)!);
    return e === undefined ? { value: optionDefault(optionFind(name)!, command), given: false } : { value: e, given: true };
  };

  const config = early('config');
  const include = early('config-include-path');
  const file: IniSections = {};
  if (config.value !== undefined) {
    const main = configFileRead(config.value as string, config.given);
    if (main) iniMerge(file, main);
  }
  // An explicit --config means "this file": the default include path is read only with the default file.
  if (include.value !== undefined && (include.given || !config.given)) {
    for (const more of configIncludeRead(include.value as string, include.given)) iniMerge(file, more);
  }

  // Only commands that take a stanza read its sections (the repo-server serves every stanza).
  const stanza = optionValidFor(optionFind('stanza')!, command) ? early('stanza').value as string | undefined : undefined;
  const sections = [...(stanza ? [`${stanza}:${command}`, stanza] : []), `global:${command}`, 'global'];
  const fileValue = (def: OptionDef): OptionValue | undefined => {
    for (const section of sections) {
      const items = file[section]?.[def.name];
      if (!items) continue;
      let acc: OptionValue | undefined;
      for (const item of items) acc = merge(def, acc, optionParse(def, item, command));
      return acc;
    }
    return undefined;
  };

  const values = new Map<string, Setting>();
  for (const def of optionTable) {
    if (!optionValidFor(def, command)) continue;
    let setting = cli.get(def.name);
    if (!setting) {
      const e = envValue(def);
      const f = e === undefined && def.section !== 'command-line' ? fileValue(def) : undefined;
      const d = optionDefault(def, command);
      setting = e !== undefined ? { value: e, source: 'env' }
        : f !== undefined ? { value: f, source: 'config' }
          : { value: d, source: d === undefined ? 'unset' : 'default' };
    }
    if (def.secret && typeof setting.value === 'string') logRedact(setting.value);
    values.set(def.name, setting);
    if (setting.value === undefined && def.required?.includes(command)) {
      throw new OptionRequiredError(`${command} command requires option: ${def.name}`,
        { hint: def.section === 'command-line' ? `add --${def.name}=...` : `set ${def.name} in the config file (section [${stanza ?? 'global'}]), ${optionEnvName(def.name)} or --${def.name}` });
    }
  }
  return new Config(command, parsed.args, values);
}
