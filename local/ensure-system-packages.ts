// Entry for `npm test` (pretest) and `npm run local`: installs MariaDB/PostgreSQL from Debian packages when missing.
import { ensureSystemPackages } from './services/system-packages';

try {
  ensureSystemPackages();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
