/**
 * `cdc redrive [db.table] [--timeout <s>]`: after the cause is fixed, applies again the changelog objects the merge set
 * aside (retries exhausted, or poison), each with fresh attempts, as SQS's DLQ redrive does in AWS. Locally the
 * running pipeline's merge queue does it (the Firehose stand-in's in lake apply, the stream apply's otherwise; only
 * its process may write it): this command writes the request next to the stand-in's state file and waits for the
 * answer. In AWS the dead letters are SQS messages: redrive the queue there.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIREHOSE_STATE_FILE_NAME,
  type RedriveRequest,
  type RedriveResult,
  redriveRequestFile,
  redriveResultFile,
} from '../../../local/firehose-dead-letters';
import { waitFor } from '../../../local/services/process';
import { CliError } from '../errors';
import type { Output } from '../output';
import type { Target } from '../target';

export interface RedriveOptions {
  /** Only this table's set-aside objects. @default every table */
  readonly table?: { readonly db: string; readonly table: string } | undefined;
  /** How long to wait for the running stand-in to take the request. @default 30 */
  readonly timeoutS?: number | undefined;
}

export async function redrive(t: Target, opts: RedriveOptions, out: Output): Promise<number> {
  if (t.kind !== 'local' || !t.localDir) {
    throw new CliError(
      'REFUSED',
      'redrive applies to the local run; in AWS the set-aside objects are messages in the merge dead-letter queue: ' +
        'SQS console → Start DLQ redrive, or aws sqs start-message-move-task --source-arn <dead-letter queue ARN> ' +
        '(docs/operations.md#dead-letters)',
    );
  }
  const stateFile = join(t.localDir, FIREHOSE_STATE_FILE_NAME);
  const request: RedriveRequest = {
    id: randomUUID(),
    tables: opts.table ? [`${opts.table.db}.${opts.table.table}`] : [],
  };
  rmSync(redriveResultFile(stateFile), { force: true });
  const tmp = `${redriveRequestFile(stateFile)}.tmp`;
  writeFileSync(tmp, JSON.stringify(request));
  renameSync(tmp, redriveRequestFile(stateFile));
  const timeoutS = opts.timeoutS ?? 30;
  const result = await waitFor(
    'the local merge queue to take the redrive request',
    async () => {
      if (!existsSync(redriveResultFile(stateFile))) return undefined;
      const r = JSON.parse(readFileSync(redriveResultFile(stateFile), 'utf8')) as RedriveResult;
      return r.id === request.id ? r : undefined;
    },
    timeoutS * 1000,
  ).catch(() => {
    rmSync(redriveRequestFile(stateFile), { force: true });
    throw new CliError(
      'FAILED',
      `the local merge queue (stream apply or Firehose stand-in) did not take the redrive request within ${timeoutS} s: is the local pipeline running (npm run local -- status)?`,
    );
  });
  out.say(
    result.objects.length === 0
      ? 'nothing set aside to redrive'
      : `${result.objects.length} set-aside object(s) queued again with fresh attempts:\n${result.objects.map((o) => `  ${o}`).join('\n')}\nfollow them with npx cdc status`,
  );
  out.result({ redriven: result.objects.length, objects: result.objects });
  return 0;
}
