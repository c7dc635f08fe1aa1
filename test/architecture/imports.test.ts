/**
 * The rules the tree keeps (issue 12; docs/architecture.md, "Parts and the allowed arrows"), checked on every import
 * of every TypeScript file, type-only imports included:
 * - the runtimes (`containers/producer`, `lambdas/`, `shared/`) import nothing from `local/`, `lib/`, `bin/`, `cli/`,
 *   `test/` or `bench/`, nor `aws-cdk-lib`/`constructs`: what ships in the image and the Lambda bundle is only theirs;
 * - the producer and the merge meet only in `shared/` (neither imports the other);
 * - `shared/` imports only `shared/`;
 * - no import circle anywhere.
 * Imports are read with TypeScript's own pre-processor (no regular expressions over source text).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');
const SOURCES = ['bin', 'lib', 'containers', 'lambdas', 'shared', 'local', 'cli', 'bench', 'test'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'cdk.out' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...tsFiles(path));
    else if (/\.(ts|mts|cts)$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Every file's imports: relative ones resolved to repository paths, packages by name. */
function importGraph(): Map<string, { files: string[]; packages: string[] }> {
  const graph = new Map<string, { files: string[]; packages: string[] }>();
  const files = SOURCES.flatMap((d) => tsFiles(join(ROOT, d)));
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const entry = { files: [] as string[], packages: [] as string[] };
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) {
        entry.packages.push(fileName);
        continue;
      }
      const base = resolve(dirname(file), fileName);
      const target = [`${base}.ts`, join(base, 'index.ts'), base].find((p) => {
        try {
          return statSync(p).isFile();
        } catch {
          return false;
        }
      });
      if (target) entry.files.push(relative(ROOT, target));
    }
    graph.set(relative(ROOT, file), entry);
  }
  return graph;
}

const graph = importGraph();
const isRuntime = (f: string) => /^(containers\/producer|lambdas|shared)\//.test(f);
const area = (f: string) => f.split('/')[0]!;

describe('the import rules of the tree', () => {
  it('reads the whole tree (the check would pass vacuously on an empty one)', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get('containers/producer/src/main.ts')?.files.length).toBeGreaterThan(5);
  });

  it('runtimes import nothing from local/, lib/, bin/, cli/, test/, bench/ or the CDK', () => {
    const broken: string[] = [];
    for (const [file, { files, packages }] of graph) {
      if (!isRuntime(file)) continue;
      for (const f of files) if (!isRuntime(f)) broken.push(`${file} → ${f}`);
      for (const p of packages)
        if (p === 'aws-cdk-lib' || p.startsWith('aws-cdk-lib/') || p === 'constructs') broken.push(`${file} → ${p}`);
    }
    expect(broken).toEqual([]);
  });

  it('the producer and the merge meet only in shared/, and shared/ imports only shared/', () => {
    const broken: string[] = [];
    for (const [file, { files }] of graph) {
      for (const f of files) {
        if (file.startsWith('containers/') && f.startsWith('lambdas/')) broken.push(`${file} → ${f}`);
        if (file.startsWith('lambdas/') && f.startsWith('containers/')) broken.push(`${file} → ${f}`);
        if (area(file) === 'shared' && area(f) !== 'shared') broken.push(`${file} → ${f}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('has no import circle', () => {
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const g of graph.get(f)?.files ?? []) {
        if (state.get(g) === 'open') circles.push([...stack.slice(stack.indexOf(g)), g].join(' → '));
        else if (!state.has(g)) visit(g);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
    expect(circles).toEqual([]);
  });
});
