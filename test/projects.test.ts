/**
 * Keeps the unit/integration split of vitest.config.ts from rotting: `npm run test:unit` must stay server-free (so it
 * stays fast and runs anywhere), and must hold every test that needs no server (so it stays worth running).
 * A file "starts a server" when it imports, at run time, one of the helpers below, or a test support file that does.
 * Imports are read from TypeScript's syntax tree; type-only imports are ignored (they vanish at run time).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import config, { UNIT_TEST_FILES } from '../vitest.config';

const ROOT = resolve(import.meta.dirname, '..');

/** Module (repository path without extension, or package) → the exports that start something; '*' is all of them. */
const SERVER_STARTERS: Record<string, readonly string[] | '*'> = {
  'local/services/mariadb': ['startMariaDb'],
  'local/services/postgres': ['startPostgres'],
  'local/services/emulators': ['startEmulator'],
  'local/services/process': ['run', 'spawnDaemon'],
  'local/pipeline': ['startPipeline'],
  'test/producer/support/harness': ['startProducerHarness'],
  'test/merge/support/postgres-merge': ['startPgHarness', 'usePgHarness'],
  'test/merge/support/data-api-endpoint': ['startDataApiEndpoint'],
  'test/cli/support/run-cdc': ['runCdc'],
  'test/infra/support/synth': ['synthStage'],
  'test/infra/support/cli-synth': ['cliSynth'],
  'bench/support/latency-kinesis': ['startLatencyKinesis', 'startLatencyKinesisInWorker'],
  'node:child_process': '*',
  child_process: '*',
  'node:http': ['createServer'],
  'node:https': ['createServer'],
  'node:net': ['createServer'],
  // Template/Annotations synthesize the stack they are given.
  'aws-cdk-lib/assertions': '*',
};

/** One run-time import: the module (resolved as in SERVER_STARTERS) and the names taken ('*' for the whole module). */
interface RuntimeImport {
  readonly module: string;
  readonly names: readonly string[] | '*';
}

function moduleKey(fromFile: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return relative(ROOT, resolve(dirname(join(ROOT, fromFile)), specifier)).replace(/\.(ts|js)$/, '');
}

const importsOf = new Map<string, RuntimeImport[]>();

function runtimeImports(file: string): RuntimeImport[] {
  const known = importsOf.get(file);
  if (known) return known;
  const source = ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: RuntimeImport[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const module = moduleKey(file, node.moduleSpecifier.text);
      if (!clause)
        out.push({ module, names: '*' }); // side-effect import
      else if (!clause.isTypeOnly) {
        const names: string[] = [];
        let whole = Boolean(clause.name); // a default import may be anything the module holds
        const bindings = clause.namedBindings;
        if (bindings && ts.isNamespaceImport(bindings)) whole = true;
        if (bindings && ts.isNamedImports(bindings))
          for (const el of bindings.elements) if (!el.isTypeOnly) names.push((el.propertyName ?? el.name).text);
        if (whole) out.push({ module, names: '*' });
        else if (names.length > 0) out.push({ module, names });
      }
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      out.push({ module: moduleKey(file, node.arguments[0].text), names: '*' });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  importsOf.set(file, out);
  return out;
}

/** Why `file` starts a server (empty when it does not), following imports into test support files. */
function serverStarts(file: string, seen = new Set<string>()): string[] {
  seen.add(file);
  const reasons: string[] = [];
  for (const { module, names } of runtimeImports(file)) {
    const starters = SERVER_STARTERS[module];
    if (starters) {
      const hits = starters === '*' || names === '*' ? [names === '*' ? '*' : names.join(', ')] : [];
      if (starters !== '*' && names !== '*') hits.push(...names.filter((n) => starters.includes(n)));
      if (hits.length > 0) reasons.push(`${file} imports ${hits.join(', ')} from ${module}`);
    }
    const support = `${module}.ts`;
    if (module.startsWith('test/') && existsSync(join(ROOT, support)) && !seen.has(support)) {
      const inner = serverStarts(support, seen);
      if (inner.length > 0) reasons.push(`${file} imports ${module}, which starts servers: ${inner.join('; ')}`);
    }
  }
  return reasons;
}

/** Every test file of the tree, whichever project runs it. */
const allTests = readdirSync(join(ROOT, 'test'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => `test/${f.split('\\').join('/')}`)
  .sort();

/** The files an entry of UNIT_TEST_FILES names: a path, or a glob of `*` (within a folder) and `**` (any folders). */
function matches(entry: string): string[] {
  const pattern = entry
    .split(/(\*\*\/|\*)/)
    .map((part) => (part === '**/' ? '(?:.*/)?' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  const re = new RegExp(`^${pattern}$`);
  return allTests.filter((f) => re.test(f));
}

const unitTests = [...new Set(UNIT_TEST_FILES.flatMap(matches))].sort();

describe('the unit/integration split of the tests', () => {
  it('is the split vitest runs: the unit project is the list, the integration project the rest', () => {
    const projects = (config.test?.projects ?? []) as {
      test: { name: string; include: string[]; exclude?: string[] };
    }[];
    expect(projects.map((p) => p.test.name)).toEqual(['unit', 'integration']);
    expect(projects[0]!.test.include).toEqual(UNIT_TEST_FILES);
    expect(projects[1]!.test.exclude).toEqual(UNIT_TEST_FILES);
  });

  it('lists only entries that name a test file (a renamed file must not drop out of the unit project unnoticed)', () => {
    expect(UNIT_TEST_FILES.filter((entry) => matches(entry).length === 0)).toEqual([]);
  });

  it('keeps every server-starting helper out of the unit project', () => {
    expect(unitTests.flatMap((f) => serverStarts(f))).toEqual([]);
  });

  it('puts every test file that starts no server in the unit project (add it to UNIT_TEST_FILES)', () => {
    const serverFree = allTests.filter((f) => !unitTests.includes(f) && serverStarts(f).length === 0);
    expect(serverFree).toEqual([]);
  });

  it('sees a server start through a support file and through a named import (the check is not vacuous)', () => {
    const keyValues = serverStarts('test/merge/key-values.test.ts').join('\n');
    expect(keyValues).toMatch(/imports usePgHarness from test\/merge\/support\/postgres-merge/);
    expect(keyValues).toMatch(/imports test\/merge\/support\/postgres-merge, which starts servers: .*startPostgres/);
    expect(serverStarts('test/local/cli.test.ts').join('\n')).toMatch(/node:child_process/);
    expect(unitTests).toContain('test/projects.test.ts');
    expect(allTests.length).toBeGreaterThan(unitTests.length);
  });
});
