// BENCHMARKS.md at the top of the checkout: the latest result of each benchmark, one section per
// benchmark between markers, replaced when that benchmark runs again (the others stay).
import * as fs from 'node:fs';
import * as path from 'node:path';

export const BENCHMARKS_FILE = path.resolve(__dirname, '..', '..', '..', 'BENCHMARKS.md');

const HEADER = `# Benchmarks

The latest result of each benchmark on the development machine (2 cores, Debian 12, Node 20,
PostgreSQL 15, pgBackRest 2.45 from Debian), written by the benchmark itself when it runs. The
machine is shared: read ratios to the peer measured in the same run, not absolute times. Each
section says how to reproduce it; every run also keeps its full results in \`bench/results/\`.
`;

/** Replaces (or adds) the section `name` of BENCHMARKS.md with `markdown`. */
export function benchmarksSectionWrite(name: string, markdown: string): void {
  const start = `<!-- ${name}:start -->`, end = `<!-- ${name}:end -->`;
  const text = fs.existsSync(BENCHMARKS_FILE) ? fs.readFileSync(BENCHMARKS_FILE, 'utf8') : HEADER;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const a = text.indexOf(start), b = text.indexOf(end);
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(BENCHMARKS_FILE, next);
}

/** A target line: what was asked, what was measured, met or not. */
export function targetLine(what: string, measured: string, met: boolean | undefined): string {
  return `| ${what} | ${measured} | ${met === undefined ? 'not measured' : met ? 'met' : '**missed**'} |`;
}
