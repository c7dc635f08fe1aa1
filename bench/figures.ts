import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';

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

/** Merges figures into bench/results/latest.json (other benchmarks' figures are kept). */
export function recordFigures(figures: Figures, file = RESULTS_FILE): void {
  mkdirSync(dirname(file), { recursive: true });
  const current = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { figures?: Figures }) : {};
  const merged = {
    updated: new Date().toISOString(),
    machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model },
    figures: { ...(current.figures ?? {}), ...figures },
  };
  writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
}
