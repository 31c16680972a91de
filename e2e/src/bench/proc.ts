// What the benchmarks read of processes from /proc (Linux; USER_HZ is 100, so a tick is 10 ms).
import * as fs from 'node:fs';

/** The CPU ticks in a /proc/<pid>/stat line: the process's own (user, system) and its waited-for children's. */
export function statTicks(stat: string): { utime: number; stime: number; cutime: number; cstime: number } {
  // After the name (which may hold spaces and parentheses): state, ppid, ... utime is the line's 14th field.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  return { utime: f[11]!, stime: f[12]!, cutime: f[13]!, cstime: f[14]! };
}

/** utime + stime of a process (seconds). */
export function cpuOf(pid: number): number {
  const t = statTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return (t.utime + t.stime) / 100;
}

/** The peak RSS of a process (VmHWM, MB). */
export function rssPeakMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}
