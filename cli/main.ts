/**
 * `npx cdc <verb>`: the operator CLI (docs/cli.md). Parses the arguments once, resolves the pipeline to talk to (the
 * local run by default, a deployed one with CDC_TARGET=aws), runs one command, exits 0 on success, 1 when the
 * pipeline is not as asked (a failed backfill, differing rows, a refused position), 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { backfill } from './src/commands/backfill';
import { preflight } from './src/commands/preflight';
import { rebuild } from './src/commands/rebuild';
import { redrive } from './src/commands/redrive';
import { replay } from './src/commands/replay';
import { resync } from './src/commands/resync';
import { setPosition } from './src/commands/set-position';
import { status } from './src/commands/status';
import { validate } from './src/commands/validate';
import { CliError, parseTableName } from './src/errors';
import { createOutput } from './src/output';
import { resolveTarget, type Target } from './src/target';

const USAGE = `usage: npx cdc <verb> [options]

  status                                    checkpoint, lag, snapshot jobs, rows per table, last errors
  backfill <db.table> [--where <sql>]       read a table (or the rows of a WHERE) again, following its progress
           [--no-follow] [--timeout <s>]
  preflight                                 the deploy prerequisites checked: source settings and grants, warehouse,
                                            stream, bucket; one line each, exit 1 when one fails
  resync <db.table> [--no-follow]           rebuild the table's replica from a fresh read of the source
         [--timeout <s>]
  validate <db.table> [--chunk-rows <n>]    compare source and replica per key-range checksum; exit 1 on differences
           [--lag-window <s>]
  set-position <file:pos|gtid|time> [--yes] move the producer's checkpoint (refuses purged or future positions)
  rebuild <db.table> --as-of <time>         rebuild the table as of a moment from the S3 lake, into a new table
          [--into <name>]
  redrive [db.table] [--timeout <s>]        apply again the objects the merge set aside (local run), once fixed
  replay [db.table] --since <time>          apply the lake's objects of a window again to the live replicas
         [--until <time>]                   (idempotent: fills in what is missing, changes nothing else)

options for every verb:
  --json               machine-readable output on stdout
  --endpoints <file>   the local run's endpoints.json (default .local/endpoints.json)
  -h, --help           this text

Against the local run (npm run local -- up) by default; CDC_TARGET=aws for a deployed pipeline (docs/cli.md).`;

const OPTIONS = {
  json: { type: 'boolean' },
  endpoints: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  where: { type: 'string' },
  'no-follow': { type: 'boolean' },
  timeout: { type: 'string' },
  'chunk-rows': { type: 'string' },
  'lag-window': { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  'as-of': { type: 'string' },
  into: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
} as const;

const ALLOWED: Record<string, readonly string[]> = {
  status: [],
  backfill: ['where', 'no-follow', 'timeout'],
  preflight: [],
  resync: ['no-follow', 'timeout'],
  validate: ['chunk-rows', 'lag-window'],
  'set-position': ['yes'],
  rebuild: ['as-of', 'into'],
  redrive: ['timeout'],
  replay: ['since', 'until'],
};

function number(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) {
    throw new CliError('USAGE', `--${name} needs a number ≥ ${min}, got ${JSON.stringify(text)}`);
  }
  return n;
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError('USAGE', (err as Error).message);
  }
  const { values: v, positionals } = parsed;
  const [verb, ...rest] = positionals;
  if (v.help || !verb) {
    process.stdout.write(`${USAGE}\n`);
    return v.help ? 0 : 2;
  }
  const allowed = ALLOWED[verb];
  if (!allowed) throw new CliError('USAGE', `unknown verb ${JSON.stringify(verb)}; see npx cdc --help`);
  for (const name of Object.keys(v)) {
    if (!['json', 'endpoints', 'help', ...allowed].includes(name)) {
      throw new CliError('USAGE', `--${name} does not apply to ${verb}`);
    }
  }
  const maxArgs = verb === 'status' || verb === 'preflight' ? 0 : 1;
  if (rest.length > maxArgs)
    throw new CliError('USAGE', `${verb}: unexpected argument ${JSON.stringify(rest[maxArgs])}`);
  const out = createOutput(!!v.json);

  // Arguments are checked before anything is contacted.
  const table =
    ['backfill', 'resync', 'validate', 'rebuild'].includes(verb) || (['redrive', 'replay'].includes(verb) && rest[0])
      ? parseTableName(rest[0], verb)
      : undefined;
  if (verb === 'rebuild' && !v['as-of']) throw new CliError('USAGE', 'rebuild needs --as-of <time>');
  if (verb === 'replay' && !v.since) throw new CliError('USAGE', 'replay needs --since <time>');
  if (verb === 'set-position' && !rest[0]) throw new CliError('USAGE', 'set-position needs <file:pos|gtid|time>');
  const timeoutS = number('timeout', v.timeout, 1);
  const chunkRows = number('chunk-rows', v['chunk-rows'], 1);
  const lagWindowS = number('lag-window', v['lag-window'], 0);

  const target: Target = resolveTarget({ endpoints: v.endpoints });
  try {
    switch (verb) {
      case 'preflight':
        return await preflight(target, out);
      case 'status':
        return await status(target, out);
      case 'backfill':
        return await backfill(target, { ...table!, where: v.where, follow: !v['no-follow'], timeoutS }, out);
      case 'resync':
        return await resync(target, { ...table!, follow: !v['no-follow'], timeoutS }, out);
      case 'validate':
        return await validate(target, { ...table!, chunkRows, lagWindowS }, out);
      case 'set-position':
        return await setPosition(target, { spec: rest[0], yes: !!v.yes }, out);
      case 'redrive':
        return await redrive(target, { table, timeoutS }, out);
      case 'replay':
        return await replay(target, { table, since: v.since, until: v.until }, out);
      default:
        return await rebuild(target, { ...table!, asOf: v['as-of'], into: v.into }, out);
    }
  } finally {
    await target.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    const json = process.argv.includes('--json');
    const code = err instanceof CliError ? err.code : 'ERROR';
    if (json) process.stdout.write(`${JSON.stringify({ error: { code, message: err.message } })}\n`);
    process.stderr.write(`cdc: ${err.message}\n`);
    process.exit(err instanceof CliError ? err.exitCode : 1);
  },
);
