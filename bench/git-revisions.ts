/**
 * What the benchmark history needs from git: the commit a run measures, and every committed version of latest.json
 * (to seed the history). Kept apart from bench/history.ts so the history logic stays pure and unit-tested.
 */
import { execFileSync } from 'node:child_process';
import { relative, resolve } from 'node:path';
import type { ResultsRevision, Revision } from './history';

const ROOT = resolve(import.meta.dirname, '..');

const git = (...args: string[]) =>
  execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).trimEnd();

/** HEAD's short hash, and whether tracked files differ from it (untracked files do not make a run dirty). */
export function currentRevision(): Revision {
  try {
    return {
      commit: git('rev-parse', '--short', 'HEAD'),
      dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
    };
  } catch {
    // A benchmark run outside a git checkout (an unpacked tarball) still records its figures.
    return { commit: 'unknown', dirty: true };
  }
}

/** Every committed version of `file`, oldest first, each with the short hash of the commit that wrote it. */
export function resultsRevisions(file: string): ResultsRevision[] {
  const path = relative(ROOT, file);
  const commits = git('log', '--format=%h', '--reverse', '--follow', '--', path)
    .split('\n')
    .filter((c) => c !== '');
  const out: ResultsRevision[] = [];
  for (const commit of commits) {
    // --follow may list the commit that deleted or renamed the file; a version that cannot be read is skipped.
    let text: string;
    try {
      text = git('show', `${commit}:${path}`);
    } catch {
      continue;
    }
    out.push({ commit, text });
  }
  return out;
}
