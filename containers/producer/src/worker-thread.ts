/**
 * Starts one of the producer's worker threads (the encode worker, the Kinesis sink's thread) from its entry module.
 * In the container each entry is bundled beside main.js (the Dockerfile lists them); from TypeScript sources (tests,
 * benchmarks, `npm run local`) the entry is bundled with esbuild into the temp directory once per process (50–500 ms):
 * a worker started through tsx's loader took 1.2–1.5 s to load and carried the loader's memory.
 */
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
// Not `{ createRequire }`: the container bundle's banner declares that name at the top of the same module.
import nodeModule from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ResourceLimits, Worker } from 'node:worker_threads';
import type * as Esbuild from 'esbuild';

/** The worker entries: each is `<name>.ts` in this directory, and `<name>.js` in the container bundle. */
export type WorkerEntry = 'encode-worker' | 'kinesis-sink-thread';

const devBundles = new Map<WorkerEntry, string>();

export function startWorker(entry: WorkerEntry, workerData: unknown, resourceLimits?: ResourceLimits): Worker {
  const bundled = fileURLToPath(new URL(`./${entry}.js`, import.meta.url));
  const file = existsSync(bundled) ? bundled : devBundle(entry);
  return new Worker(file, { workerData, ...(resourceLimits ? { resourceLimits } : {}) });
}

/** The entry bundled from its TypeScript sources into the temp directory, once per process. */
function devBundle(entry: WorkerEntry): string {
  let file = devBundles.get(entry);
  if (file) return file;
  const esbuild = nodeModule.createRequire(import.meta.url)('esbuild') as typeof Esbuild;
  const built = esbuild.buildSync({
    entryPoints: [fileURLToPath(new URL(`./${entry}.ts`, import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    // The AWS SDK's CommonJS modules call require(); an ES module bundle has none of its own.
    banner: {
      js: "import { createRequire as __cdcRequire } from 'module'; const require = __cdcRequire(import.meta.url);",
    },
  });
  const text = built.outputFiles[0]!.text;
  file = join(tmpdir(), `cdc-${entry}-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.mjs`);
  if (!existsSync(file)) writeFileSync(file, text);
  devBundles.set(entry, file);
  return file;
}
