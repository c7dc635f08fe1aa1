import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { commandExists } from './process';

export interface Requirement {
  readonly what: string;
  readonly present: () => boolean;
  readonly packages: readonly string[];
}

const REQUIREMENTS: readonly Requirement[] = [
  {
    what: 'MariaDB server',
    present: () => commandExists('mariadbd') || existsSync('/usr/sbin/mariadbd'),
    packages: ['mariadb-server'],
  },
  {
    what: 'MariaDB client tools (mariadb, mariadb-binlog, mariadb-dump)',
    present: () => commandExists('mariadb') && commandExists('mariadb-binlog') && commandExists('mariadb-dump'),
    packages: ['mariadb-client'],
  },
  {
    what: 'PostgreSQL server',
    present: () => ['15', '16', '17'].some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`)),
    packages: ['postgresql'],
  },
  { what: 'PostgreSQL client (psql)', present: () => commandExists('psql'), packages: ['postgresql-client'] },
];

/**
 * Chromium, for the local dashboard's browser test (test/e2e/dashboard.test.ts, driven by playwright-core): Debian's
 * package, since playwright's own browser downloads are not allowed here. Not needed by `npm run local`.
 */
export const CHROMIUM: Requirement = {
  what: 'Chromium (headless browser for the dashboard test)',
  present: () => existsSync(CHROMIUM_PATH),
  packages: ['chromium'],
};
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Makes sure the Debian packages the local run and the tests need are installed: installs the missing ones with
 * apt-get when running as root, otherwise fails with the command to run.
 */
export function ensureSystemPackages(
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  /** Needed besides the local run's (CHROMIUM for the tests). @default none */
  extra: readonly Requirement[] = [],
): void {
  const required = [...REQUIREMENTS, ...extra];
  const missing = required.filter((r) => !r.present());
  if (missing.length === 0) return;
  const packages = [...new Set(missing.flatMap((r) => r.packages))];
  const command = `apt-get install -y ${packages.join(' ')}`;
  if (process.getuid?.() !== 0 || !commandExists('apt-get')) {
    throw new Error(`missing ${missing.map((m) => m.what).join(', ')}: install them with \`sudo ${command}\``);
  }
  log(`installing ${packages.join(', ')} (missing: ${missing.map((m) => m.what).join(', ')})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...packages],
  ]) {
    const res = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (res.status !== 0)
      throw new Error(`apt-get ${args.join(' ')} failed (exit ${res.status}); run \`${command}\` yourself`);
  }
  const still = required.filter((r) => !r.present());
  if (still.length > 0) throw new Error(`still missing after install: ${still.map((m) => m.what).join(', ')}`);
}
