import { commandTable, optionTable, optionValidFor, type CommandName, type OptionType } from './option-table';

function defaultText(v: unknown, type: OptionType): string {
  if (v === undefined) return '';
  if (type === 'size' && typeof v === 'number') {
    for (const [unit, bytes] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (v >= bytes && v % bytes === 0) return `${v / bytes}${unit}`;
  }
  if (typeof v === 'boolean') return v ? 'y' : 'n';
  if (Array.isArray(v)) return v.length ? v.join(',') : '';
  if (typeof v === 'object') return '';
  return String(v);
}

/** The width of a column of `names` (`min` at least): two spaces at least before the text that follows, however long the name. */
function columnWidth(names: string[], min: number): number {
  return Math.max(min, ...names.map((n) => n.length + 2));
}

/** Help text of a program, or of one of its commands with every option it takes. */
export function commandHelp(program: string, command?: CommandName): string {
  const commands = commandTable.filter((c) => c.program === program || (c.name === 'version' || c.name === 'help'));
  if (!command) {
    const lines = [`${program} - OpenRDS BackRest`, '', `Usage: ${program} <command> [options]`, '', 'Commands:'];
    const width = columnWidth(commands.map((c) => c.word), 16);
    for (const c of commands) lines.push(`    ${c.word.padEnd(width)}${c.summary}`);
    lines.push('', `Use '${program} help <command>' for the options of a command.`,
      'Options: --name=value on the command line, OPENRDS_NAME in the environment, or name=value in the config file.', '');
    return lines.join('\n');
  }
  const def = commandTable.find((c) => c.name === command);
  const lines = [`${program} ${def?.word ?? command}${def?.args ? ` ${def.args}` : ''} [options]`, '', def?.summary ?? '', '', 'Options:'];
  const options = optionTable.filter((x) => optionValidFor(x, command));
  const width = columnWidth(options.map((o) => o.name), 24);
  for (const o of options) {
    const d = defaultText(o.commandDefault?.[command] ?? o.default, o.type);
    const allowed = o.commandAllowed?.[command] ?? o.allowed;
    const req = o.required?.includes(command) ? ' (required)' : '';
    lines.push(`    --${o.name.padEnd(width)}${o.description}${req}${allowed ? ` [${allowed.join('|')}]` : ''}${d ? ` (default: ${d})` : ''}${o.secret ? ' (secret: config file or environment only)' : ''}`);
  }
  lines.push('', 'Each option: --name=value or --name value on the command line (--no-name: off or unset, --reset-name: default),',
    'OPENRDS_NAME in the environment (e.g. OPENRDS_REPO1_PATH), or name=value in the config file sections',
    '[<stanza>:<command>], [<stanza>], [global:<command>], [global], in that order of precedence.', '');
  return lines.join('\n');
}
