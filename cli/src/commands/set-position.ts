/**
 * `cdc set-position <file:pos | gtid | time> [--yes]`: moves the producer's checkpoint. The position is resolved and
 * checked against the server first (purged or ahead: refused), then confirmed (a prompt, or --yes), then written as
 * a request in the checkpoint item: the producer that holds the lease drains, moves its checkpoint there and
 * restarts from it; without a running producer, the next one starts there. Moving back re-sends changes (the merge
 * ignores what it has already applied); moving forward skips changes for good.
 */
import { createInterface } from 'node:readline/promises';
import { waitFor } from '../../../local/services/process';
import { parsePositionSpec, resolvePosition } from '../binlog-position';
import { CliError } from '../errors';
import type { Output } from '../output';
import type { Target } from '../target';

export interface SetPositionOptions {
  readonly spec: string | undefined;
  readonly yes: boolean;
  /** How long to wait for a running producer to apply it. @default 60 */
  readonly waitS?: number;
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
}

export async function setPosition(t: Target, opts: SetPositionOptions, out: Output): Promise<number> {
  const spec = parsePositionSpec(opts.spec);
  const target = await resolvePosition(t.source, spec);
  const item = await t.store.read();
  const current = item ? `${item.file}:${item.pos}${item.gtid ? ` (GTID ${item.gtid})` : ''}` : 'none';
  const next = `${target.file}:${target.pos}${target.gtid ? ` (GTID ${target.gtid})` : ''}`;
  const direction = !item
    ? ''
    : target.file < item.file || (target.file === item.file && target.pos < item.pos)
      ? ' — back: changes after it are sent again'
      : target.file === item.file && target.pos === item.pos
        ? ' — unchanged'
        : ' — FORWARD: changes in between are skipped and never reach the replicas';
  out.say(`pipeline ${t.pipelineId}: checkpoint ${current}\nnew position: ${next}${direction}`);
  if (!opts.yes) {
    if (!process.stdin.isTTY)
      throw new CliError('REFUSED', 'not confirmed: pass --yes to move the checkpoint without a prompt');
    if (!(await confirm(`type "yes" to move the checkpoint of pipeline ${t.pipelineId}: `))) {
      throw new CliError('REFUSED', 'not confirmed; nothing changed');
    }
  }
  const requestedAt = Date.now();
  const request = {
    file: target.file,
    pos: target.pos,
    gtid: target.gtid,
    requestedAt,
    reason: `cdc set-position ${opts.spec}`,
  };
  await t.store.requestPosition(request);
  const running = !!item?.leaseOwner && (item.leaseExpires ?? 0) > Date.now();
  if (!running) {
    out.say('requested; no producer is running: the next one starts there');
    out.result({ ...request, applied: false });
    return 0;
  }
  await waitFor(
    'the producer to apply the new position',
    async () => !(await t.store.positionRequest()),
    (opts.waitS ?? 60) * 1000,
  ).catch(() => {
    throw new CliError(
      'FAILED',
      'the producer did not apply the request in time; it stays pending (cdc status shows it)',
    );
  });
  out.say('applied: the producer drained, moved its checkpoint and restarts from the new position');
  out.result({ ...request, applied: true });
  return 0;
}
