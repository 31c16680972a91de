import * as fs from 'node:fs';
import { ConfigError, OptionInvalidError, OptionRequiredError } from '../error';
import { logRedact } from '../log';
import {
  optionFind, optionTable, optionValidFor, type CommandName, type OptionDef, type OptionValue,
} from './option-table';

export type OptionSource = 'command-line' | 'env' | 'config' | 'default' | 'unset';

export interface ConfigLoadOptions {
  command: CommandName;
  /** Arguments after the command word: --options and positional args. */
  argv: string[];
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_CONFIG = '/etc/openrds/openrds.conf';

/**
 * Reads pgBackRest-style INI: [section] headers, key=value lines, '#' and ';' comments. A key
 * repeated in a section accumulates (list and hash options are written that way).
 */
export function iniParse(text: string, file: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
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

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4 };

/** Parses one raw value for an option; throws OptionInvalidError naming the option. */
export function optionParse(def: OptionDef, raw: string, command: CommandName): OptionValue {
  const bad = (why: string): OptionInvalidError => new OptionInvalidError(`'${raw}' is not valid for option '${def.name}': ${why}`,
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
      if (!/^-?\d+$/.test(raw)) throw bad('expected an integer');
      return range(Number(raw));
    case 'time':
      if (!/^\d+(\.\d+)?$/.test(raw)) throw bad('expected seconds');
      return range(Number(raw));
    case 'size': {
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw);
      const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
      if (!m || unit === undefined) throw bad('expected a size such as 512KB or 1MiB');
      return range(Math.round(Number(m[1]) * unit));
    }
    case 'enum': {
      const allowed = def.commandAllowed?.[command] ?? def.allowed ?? [];
      if (!allowed.includes(raw)) throw bad(`allowed values are ${allowed.join(', ')}`);
      return raw;
    }
    case 'list':
      return [raw];
    case 'hash': {
      const eq = raw.indexOf('=');
      if (eq <= 0) throw bad('expected key=value');
      return { [raw.slice(0, eq)]: raw.slice(eq + 1) };
    }
    default:
      if (raw === '') throw bad('empty value');
      return raw;
  }
}

/** Accumulates repeatable options (list, hash), replaces the others. */
function merge(def: OptionDef, prior: OptionValue | undefined, next: OptionValue): OptionValue {
  if (def.type === 'list') return [...((prior as string[] | undefined) ?? []), ...(next as string[])];
  if (def.type === 'hash') return { ...(prior as Record<string, string> | undefined), ...(next as Record<string, string>) };
  return next;
}

interface Setting { value: OptionValue | undefined; source: OptionSource; reset?: boolean }

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

  get(name: string): OptionValue | undefined {
    if (!optionFind(name)) throw new OptionInvalidError(`unknown option '${name}'`);
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

  str(name: string): string { return String(this.must(name)); }
  strOpt(name: string): string | undefined { const v = this.get(name); return v === undefined ? undefined : String(v); }
  int(name: string): number { return Number(this.must(name)); }
  num(name: string): number { return Number(this.must(name)); }
  bool(name: string): boolean { return this.must(name) === true; }
  list(name: string): string[] { return (this.get(name) as string[] | undefined) ?? []; }
  hash(name: string): Record<string, string> { return (this.get(name) as Record<string, string> | undefined) ?? {}; }

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

  /** Options set on the command line or in the environment, for forwarding a command elsewhere. */
  explicit(): Record<string, OptionValue> {
    const out: Record<string, OptionValue> = {};
    for (const [name, s] of this.values) {
      if ((s.source === 'command-line' || s.source === 'env') && s.value !== undefined) out[name] = s.value;
    }
    return out;
  }
}

/** Splits argv into option assignments and positional args. */
function argvParse(argv: string[]): { options: { name: string; raw: string | undefined; negate: boolean; reset: boolean }[]; args: string[] } {
  const options: { name: string; raw: string | undefined; negate: boolean; reset: boolean }[] = [];
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || a === '--') {
      if (a === '--') { args.push(...argv.slice(i + 1)); break; }
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
    if (raw === undefined && def && def.type !== 'boolean' && !negate && !reset) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) { raw = next; i++; }
    }
    options.push({ name, raw, negate, reset });
  }
  return { options, args };
}

function unknownOption(name: string, where: string): OptionInvalidError {
  const near = optionSuggest(name);
  return new OptionInvalidError(`invalid option '${name}'${where}`, { hint: near ? `did you mean '${near}'? see --help` : 'see --help for the options' });
}

/**
 * Resolves every option of a command. Precedence: command line > OPENRDS_* environment >
 * config file ([stanza:command] > [stanza] > [global:command] > [global]) > default.
 */
export function configLoad(opts: ConfigLoadOptions): Config {
  const { command } = opts;
  const env = opts.env ?? process.env;
  const parsed = argvParse(opts.argv);
  const values = new Map<string, Setting>();

  // Command line first, so --config and --stanza pick the file and its sections.
  const cli = new Map<string, Setting>();
  for (const o of parsed.options) {
    const def = optionFind(o.name);
    if (!def) throw unknownOption(o.name, '');
    if (!optionValidFor(def, command)) {
      throw new OptionInvalidError(`option '${def.name}' is not valid for command '${command}'`, { hint: `see 'help ${command}'` });
    }
    if (def.secret) {
      throw new OptionInvalidError(`option '${def.name}' is a secret and not allowed on the command line`,
        { hint: `set it in the config file or in ${optionEnvName(def.name)}` });
    }
    if (o.reset) { cli.set(def.name, { value: undefined, source: 'command-line', reset: true }); continue; }
    let value: OptionValue;
    if (o.negate) {
      if (def.type !== 'boolean') { cli.set(def.name, { value: undefined, source: 'command-line', reset: true }); continue; }
      value = false;
    } else if (o.raw === undefined) {
      if (def.type !== 'boolean') throw new OptionInvalidError(`option '${def.name}' requires a value`, { hint: `--${def.name}=...` });
      value = true;
    } else {
      value = optionParse(def, o.raw, command);
    }
    cli.set(def.name, { value: merge(def, cli.get(def.name)?.value, value), source: 'command-line' });
  }

  const envValue = (def: OptionDef): OptionValue | undefined => {
    const raw = env[optionEnvName(def.name)];
    if (raw === undefined) return undefined;
    if (def.type === 'list' || def.type === 'hash') {
      return raw.split(':').filter((x) => x !== '').reduce<OptionValue | undefined>((acc, part) => merge(def, acc, optionParse(def, part, command)), undefined);
    }
    return optionParse(def, raw, command);
  };

  // The config file.
  const configDef = optionFind('config')!;
  const configPath = (cli.get('config')?.value as string | undefined) ?? (envValue(configDef) as string | undefined);
  const stanza = (cli.get('stanza')?.value as string | undefined) ?? env[optionEnvName('stanza')];
  let file: Record<string, Record<string, string[]>> = {};
  const path = configPath ?? DEFAULT_CONFIG;
  if (fs.existsSync(path)) {
    file = iniParse(fs.readFileSync(path, 'utf8'), path);
  } else if (configPath) {
    throw new ConfigError(`config file '${configPath}' does not exist`, { hint: 'check --config or OPENRDS_CONFIG' });
  }
  const sections = [
    ...(stanza ? [`${stanza}:${command}`, stanza] : []),
    `global:${command}`, 'global',
  ];
  for (const [section, body] of Object.entries(file)) {
    for (const key of Object.keys(body)) {
      const def = optionFind(key);
      if (!def) throw unknownOption(key, ` in config file '${path}' section [${section}]`);
      if (def.section === 'command-line') {
        throw new ConfigError(`option '${key}' in config file '${path}' is only allowed on the command line`, { hint: `pass --${key}=... instead` });
      }
    }
  }
  const fileValue = (def: OptionDef): OptionValue | undefined => {
    for (const section of sections) {
      const body = file[section];
      if (!body || !(def.name in body)) continue;
      let acc: OptionValue | undefined;
      for (const item of body[def.name]!) acc = merge(def, acc, optionParse(def, item, command));
      return acc;
    }
    return undefined;
  };

  for (const def of optionTable) {
    if (!optionValidFor(def, command)) continue;
    const fromCli = cli.get(def.name);
    let setting: Setting;
    if (fromCli && !fromCli.reset) setting = fromCli;
    else if (fromCli?.reset) setting = { value: def.commandDefault?.[command] ?? def.default, source: 'default' };
    else {
      const e = envValue(def);
      if (e !== undefined) setting = { value: e, source: 'env' };
      else {
        const f = fileValue(def);
        if (f !== undefined) setting = { value: f, source: 'config' };
        else {
          const d = def.commandDefault?.[command] ?? def.default;
          setting = { value: d, source: d === undefined ? 'unset' : 'default' };
        }
      }
    }
    if (def.name === 'config' && configPath === undefined) setting = { value: DEFAULT_CONFIG, source: 'default' };
    if (def.secret && typeof setting.value === 'string') logRedact(setting.value);
    values.set(def.name, setting);
    if (setting.value === undefined && def.required?.includes(command)) {
      throw new OptionRequiredError(`${command} command requires option: ${def.name}`,
        { hint: def.section === 'command-line' ? `add --${def.name}=...` : `set ${def.name} in the config file (section [${stanza ?? 'global'}]), ${optionEnvName(def.name)} or --${def.name}` });
    }
  }
  return new Config(command, parsed.args, values);
}
