#!/usr/bin/env node
// `npx cdc <verb>`: runs cli/main.ts with tsx (TypeScript without a build step, like the rest of the repository).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), main, ...process.argv.slice(2)], {
  stdio: 'inherit',
  // The SDK's notice about Node 22 would precede every command's output; the repository pins Node 20 on purpose.
  env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...process.env },
});
// Ctrl-C reaches both processes (same process group); the command handles it, this wrapper just waits.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
