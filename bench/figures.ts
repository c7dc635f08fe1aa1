import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { currentRevision } from './git-revisions';
import { appendHistory, entriesFor, HISTORY_FILE, type Revision } from './history';

/** One measured figure, side by side with the reference measured in the same run. */
export interface Figure {
  readonly value: number;
  readonly unit: string;
  /** The reference's value in the same unit (omitted for absolute figures such as peak RSS). */
  readonly reference?: number;
  readonly referenceName?: string;
  /** value ÷ reference for throughput figures (higher is better). */
  readonly ratio?: number;
  readonly target?: string;
  readonly notes?: string;
}

export type Figures = Record<string, Figure>;

/** A benchmark module: `bench/<name>.bench.ts` exporting `run`. */
export interface BenchModule {
  run(opts: { quick: boolean }): Promise<Figures>;
}

export const RESULTS_FILE = join(import.meta.dirname, 'results', 'latest.json');

/**
 * Merges figures into bench/results/latest.json (other benchmarks' figures are kept) and appends one line per figure
 * to bench/results/history.jsonl (bench/history.ts), both stamped with the same time.
 */
export function recordFigures(
  figures: Figures,
  file = RESULTS_FILE,
  history: { readonly file?: string; readonly revision?: Revision; readonly time?: Date } = {},
): void {
  mkdirSync(dirname(file), { recursive: true });
  const current = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { figures?: Figures }) : {};
  const updated = (history.time ?? new Date()).toISOString();
  const machine = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model };
  const merged = {
    updated,
    machine,
    figures: { ...(current.figures ?? {}), ...figures },
  };
  writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
  appendHistory(
    entriesFor(figures, updated, history.revision ?? currentRevision(), machine),
    history.file ?? HISTORY_FILE,
  );
}
