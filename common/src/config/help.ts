import { commandTable, optionTable, optionValidFor, type CommandName } from './option-table';

function defaultText(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'y' : 'n';
  if (Array.isArray(v)) return v.length ? v.join(',') : '';
  if (typeof v === 'object') return '';
  return String(v);
}

/** Help text of a program, or of one of its commands with every option it takes. */
export function commandHelp(program: string, command?: CommandName): string {
  const commands = commandTable.filter((c) => c.program === program || (c.name === 'version' || c.name === 'help'));
  if (!command) {
    const lines = [`${program} - OpenRDS BackRest`, '', `Usage: ${program} <command> [options]`, '', 'Commands:'];
    for (const c of commands) lines.push(`    ${c.word.padEnd(16)}${c.summary}`);
    lines.push('', `Use '${program} help <command>' for the options of a command.`,
      'Options: --name=value on the command line, OPENRDS_NAME in the environment, or name=value in the config file.', '');
    return lines.join('\n');
  }
  const def = commandTable.find((c) => c.name === command);
  const lines = [`${program} ${def?.word ?? command}${def?.args ? ` ${def.args}` : ''} [options]`, '', def?.summary ?? '', '', 'Options:'];
  for (const o of optionTable.filter((x) => optionValidFor(x, command))) {
    const d = defaultText(o.commandDefault?.[command] ?? o.default);
    const allowed = o.commandAllowed?.[command] ?? o.allowed;
    const req = o.required?.includes(command) ? ' (required)' : '';
    lines.push(`    --${o.name.padEnd(24)}${o.description}${req}${allowed ? ` [${allowed.join('|')}]` : ''}${d ? ` (default: ${d})` : ''}${o.secret ? ' (secret: config file or environment only)' : ''}`);
  }
  lines.push('');
  return lines.join('\n');
}
