// Entry for `npm test` (pretest): installs MariaDB/PostgreSQL, and Chromium for the dashboard's browser test, from
// Debian packages when missing (`npm run local` installs only what it runs).
import { CHROMIUM, ensureSystemPackages } from './services/system-packages';

try {
  ensureSystemPackages(undefined, [CHROMIUM]);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
