import { readFileSync } from 'node:fs';

/** CPU seconds (user + system) of this process's main thread so far, from /proc (Node 20 has no per-thread API). */
export function mainThreadCpuS(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
