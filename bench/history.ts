/**
 * The history of every benchmark figure: `bench/results/history.jsonl`, one JSON line per figure per run, appended by
 * `recordFigures` (bench/figures.ts) and read by the charts (bench/plots.ts). latest.json only keeps each figure's
 * last value; the history keeps all of them, with the commit they were measured on, so a chart can show a trend.
 *
 * The history was seeded from the git history of latest.json (`seedEntries`): every commit that changed the file
 * contributes the figures that differ from the commit before it (a figure carried over unchanged was not measured
 * again). Pure functions here; reading git is bench/git-revisions.ts.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const HISTORY_FILE = join(import.meta.dirname, 'results', 'history.jsonl');

/** The machine a run measured on, as latest.json records it. */
export interface Machine {
  readonly node?: string;
  readonly cpus?: number;
  readonly cpu?: string;
}

/** The commit a run measured (short hash), and whether the work tree had uncommitted changes then. */
export interface Revision {
  readonly commit: string;
  readonly dirty: boolean;
}

/** One line of history.jsonl: one figure of one run. */
export interface HistoryEntry {
  /** ISO time of the run (for seeded lines: the `updated` stamp of the latest.json that recorded it). */
  readonly time: string;
  /** Short hash of HEAD when the run measured (for seeded lines: the commit that recorded the figure). */
  readonly commit: string;
  readonly dirty: boolean;
  readonly machine: Machine;
  readonly figure: string;
  readonly value: number;
  readonly unit: string;
  readonly reference?: number;
  readonly ratio?: number;
  readonly target?: string;
  /** Present on lines recovered from the git history of latest.json rather than appended by a run. */
  readonly seeded?: true;
}

/** One committed version of latest.json: the commit that wrote it and the file's text. */
export interface ResultsRevision {
  readonly commit: string;
  readonly text: string;
}

/**
 * The numbers of one figure, as bench/figures.ts's `Figure` holds them (repeated here, structurally, so that
 * figures.ts can append to the history without an import circle).
 */
export interface FigureNumbers {
  readonly value: number;
  readonly unit: string;
  readonly reference?: number;
  readonly ratio?: number;
  readonly target?: string;
}

type Figures = Readonly<Record<string, FigureNumbers>>;

interface ResultsFile {
  readonly updated?: string;
  readonly machine?: Machine;
  readonly figures?: Figures;
}

/** The history lines of one run's figures, in the order given. Keys in a fixed order, so lines diff cleanly. */
export function entriesFor(figures: Figures, time: string, revision: Revision, machine: Machine): HistoryEntry[] {
  return Object.entries(figures).map(([figure, f]) => entry(figure, f, time, revision, machine));
}

function entry(
  figure: string,
  f: FigureNumbers,
  time: string,
  revision: Revision,
  machine: Machine,
  seeded?: true,
): HistoryEntry {
  return {
    time,
    commit: revision.commit,
    dirty: revision.dirty,
    machine: { node: machine.node, cpus: machine.cpus, cpu: machine.cpu },
    figure,
    value: f.value,
    unit: f.unit,
    ...(f.reference !== undefined ? { reference: f.reference } : {}),
    ...(f.ratio !== undefined ? { ratio: f.ratio } : {}),
    ...(f.target !== undefined ? { target: f.target } : {}),
    ...(seeded ? { seeded } : {}),
  };
}

/**
 * History lines recovered from the versions of latest.json, oldest first. A figure counts as measured in a version
 * when its value, reference or ratio differs from the version before (the first version contributes all its figures);
 * it is dated by that version's `updated` stamp and attributed to the commit that wrote it.
 */
export function seedEntries(revisions: readonly ResultsRevision[]): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  let previous: Figures = {};
  for (const { commit, text } of revisions) {
    const results = JSON.parse(text) as ResultsFile;
    const figures = results.figures ?? {};
    if (!results.updated) throw new Error(`bench history: latest.json at ${commit} has no "updated" time`);
    for (const [figure, f] of Object.entries(figures)) {
      const before = previous[figure];
      if (before && sameMeasurement(before, f)) continue;
      out.push(entry(figure, f, results.updated, { commit, dirty: false }, results.machine ?? {}, true));
    }
    previous = figures;
  }
  return out;
}

/** Two records of a figure that hold the same numbers are one measurement carried over, not two runs. */
function sameMeasurement(a: FigureNumbers, b: FigureNumbers) {
  return a.value === b.value && a.reference === b.reference && a.ratio === b.ratio;
}

export function readHistory(file = HISTORY_FILE): HistoryEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      try {
        return JSON.parse(line) as HistoryEntry;
      } catch (err) {
        throw new Error(`bench history: ${file} line ${i + 1} is not JSON: ${JSON.stringify(line.slice(0, 80))}`, {
          cause: err,
        });
      }
    });
}

/** Appends one run's lines (the file is created when missing). */
export function appendHistory(entries: readonly HistoryEntry[], file = HISTORY_FILE): void {
  if (entries.length === 0) return;
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
}

/**
 * Adds the seeded lines that the history does not hold yet and rewrites the file in time order (stable: lines of the
 * same time keep their order). A seeded line is already held when a line of the same figure has the same numbers
 * (a run's own line, or the same seed from an earlier call), so seeding twice changes nothing. Returns how many
 * lines were added.
 */
export function mergeSeed(seed: readonly HistoryEntry[], file = HISTORY_FILE): number {
  const current = readHistory(file);
  const held = new Set(current.map(measurementKey));
  const added = seed.filter((e) => !held.has(measurementKey(e)));
  if (added.length === 0) return 0;
  const all = [...current, ...added]
    .map((e, i) => ({ e, i }))
    .sort((a, b) => Date.parse(a.e.time) - Date.parse(b.e.time) || a.i - b.i)
    .map(({ e }) => e);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, all.map((e) => `${JSON.stringify(e)}\n`).join(''));
  return added.length;
}

function measurementKey(e: HistoryEntry): string {
  return JSON.stringify([e.figure, e.value, e.reference ?? null, e.ratio ?? null]);
}
