/**
 * `npm run bench [-- <name> ...] [--quick]`: runs bench/<name>.bench.ts modules (all by default), one after the
 * other, and records their figures in bench/results/latest.json. See docs/benchmarks.md.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchModule, recordFigures } from './figures';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const wanted = args.filter((a) => !a.startsWith('--'));
const all = readdirSync(import.meta.dirname)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .sort();
const names = wanted.length > 0 ? wanted : all;
for (const name of names) {
  if (!all.includes(name)) {
    process.stderr.write(`unknown benchmark ${JSON.stringify(name)}; have: ${all.join(', ')}\n`);
    process.exit(2);
  }
}
for (const name of names) {
  process.stderr.write(`== ${name}\n`);
  const mod = (await import(join(import.meta.dirname, `${name}.bench.ts`))) as BenchModule;
  const figures = await mod.run({ quick });
  recordFigures(figures);
  for (const [key, f] of Object.entries(figures)) {
    const ref =
      f.reference !== undefined
        ? `  (reference ${f.referenceName ?? ''}: ${f.reference} ${f.unit}, ratio ${f.ratio?.toFixed(2)})`
        : '';
    process.stdout.write(`${key}: ${f.value} ${f.unit}${ref}\n`);
  }
}
