/**
 * `npm run bench [-- <name> ...] [--quick]`: runs bench/<name>.bench.ts modules (all by default), one after the
 * other, records their figures in bench/results/latest.json and bench/results/history.jsonl, then renders the charts
 * into docs/benchmarks/. `npm run bench -- --plots-only` only renders the charts from the recorded figures.
 * See docs/benchmarks.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type BenchModule, type Figures, RESULTS_FILE, recordFigures } from './figures';
import { resultsRevisions } from './git-revisions';
import { HISTORY_FILE, mergeSeed, readHistory, seedEntries } from './history';
import { CHARTS_DIR, chartsFor, writeCharts } from './plots';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const plotsOnly = args.includes('--plots-only');
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
for (const name of plotsOnly ? [] : names) {
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

// The committed versions of latest.json are history too (runs recorded before history.jsonl existed, or recorded in
// another checkout); merging them is idempotent, so it runs every time.
const seeded = mergeSeed(seedEntries(resultsRevisions(RESULTS_FILE)));
if (seeded > 0) process.stderr.write(`history: ${seeded} figure(s) from the git history of latest.json\n`);
const latest = (JSON.parse(readFileSync(RESULTS_FILE, 'utf8')) as { figures: Figures }).figures;
const written = await writeCharts(chartsFor(latest, readHistory(HISTORY_FILE), all));
process.stderr.write(
  `charts (${relative(process.cwd(), CHARTS_DIR)}): ${written.map((f) => relative(CHARTS_DIR, f)).join(', ')}\n`,
);
