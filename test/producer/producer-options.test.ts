import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localAwsClientConfig } from '../../local/services/aws-config';
import { type Emulator, startEmulator } from '../../local/services/emulators';
import { waitFor } from '../../local/services/process';
import type { ChangeEvent } from '../../shared/change-event';
import { type ProducerHarness, startProducerHarness, waitForLog } from './support/harness';

const dir = mkdtempSync(join(tmpdir(), 'cdc-producer-opts-'));
let h: ProducerHarness;
let s3emu: Emulator;
let s3: S3Client;
let alterFrom: { file: string; pos: number };

beforeAll(async () => {
  [h, s3emu] = await Promise.all([startProducerHarness(), startEmulator('s3', { dir })]);
  s3 = new S3Client(localAwsClientConfig(s3emu.endpoint));
  await s3.send(new CreateBucketCommand({ Bucket: 'claims' }));
  await h.db.query('CREATE DATABASE shop');
  await h.db.query('CREATE DATABASE other');
  await h.db.query(
    'CREATE TABLE shop.customers (id INT PRIMARY KEY, email VARCHAR(80), phone VARCHAR(20), note TEXT, score INT)',
  );
  await h.db.query('CREATE TABLE shop.audit_log (id INT PRIMARY KEY)');
  await h.db.query('CREATE TABLE other.t (id INT PRIMARY KEY)');
  await h.db.query('CREATE TABLE shop.docs (id INT PRIMARY KEY, body LONGTEXT)');
  await h.db.query('CREATE TABLE shop.evolving (id INT PRIMARY KEY, a VARCHAR(10))');
  const [[m]] = (await h.db.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
  alterFrom = { file: m.File, pos: m.Position };
  // Written before the producer starts, read later by replaying from alterFrom: the ALTER is in between.
  await h.db.query("INSERT INTO shop.evolving VALUES (1, 'before')");
  await h.db.query('ALTER TABLE shop.evolving ADD COLUMN b INT FIRST');
  await h.db.query("INSERT INTO shop.evolving VALUES (7, 2, 'after')");
});
afterAll(async () => {
  await h?.close();
  await s3emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function events(table: string, n: number): Promise<ChangeEvent[]> {
  return waitFor(`${n} events of ${table}`, async () => {
    const all = (await h.readAll()).filter((e) => e.table === table);
    return all.length >= n ? all : undefined;
  });
}

describe('producer options', () => {
  it('replays from a position before an ALTER with every value under the right column; filters, hashes and masks; parks oversized rows in S3', async () => {
    const p = h.startProducer({
      START_FROM: `file:${alterFrom.file}:${alterFrom.pos}`,
      CAPTURE_INCLUDE: 'shop.*',
      CAPTURE_EXCLUDE: 'shop.audit_*',
      CAPTURE_EXCLUDE_COLUMNS: 'shop.customers.note',
      CAPTURE_HASH_COLUMNS: 'shop.customers.email',
      CAPTURE_MASK_COLUMNS: 'shop.customers.phone',
      CLAIM_CHECK_BUCKET: 'claims',
      AWS_ENDPOINT_S3: s3emu.endpoint,
    });
    await waitForLog(p, /reading the binlog/);

    const evolving = await events('evolving', 3);
    expect(evolving[0]!.after).toEqual({ id: 1, a: 'before' });
    // The ALTER itself is a table-level event between the two rows (contract v2).
    expect(evolving[1]).toMatchObject({
      v: 2,
      op: 'alter',
      change: { columns: [{ kind: 'add_column', name: 'b', type: 'int', default: null }] },
    });
    expect(evolving[1]!.position > evolving[0]!.position && evolving[1]!.position < evolving[2]!.position).toBe(true);
    expect(evolving[2]!.after).toEqual({ b: 7, id: 2, a: 'after' });

    await h.db.query("INSERT INTO shop.customers VALUES (1, 'ann@example.com', '+49 30 1234', 'private note', 5)");
    await h.db.query('INSERT INTO shop.audit_log VALUES (1)');
    await h.db.query('INSERT INTO other.t VALUES (1)');
    const [c] = await events('customers', 1);
    expect(c!.after).toEqual({
      id: 1,
      email: createHash('sha256').update('ann@example.com').digest('hex'),
      phone: '****',
      score: 5,
    });
    expect(c!.after!.email).not.toContain('ann');
    expect(c!.columns.map((col) => col.name)).toEqual(['id', 'email', 'phone', 'score']);
    expect(c!.columns.find((col) => col.name === 'email')?.type).toBe('char(64)');

    const big = 'x'.repeat(1_200_000);
    await h.db.query('INSERT INTO shop.docs VALUES (1, ?)', [big]);
    const [pointer] = await events('docs', 1);
    expect(pointer!.after).toBeNull();
    expect(pointer!.claim_check).toMatchObject({ bucket: 'claims' });
    const parked = await s3.send(new GetObjectCommand({ Bucket: 'claims', Key: pointer!.claim_check!.key }));
    const full = JSON.parse(await parked.Body!.transformToString()) as ChangeEvent;
    expect(full.after).toEqual({ id: 1, body: big });
    expect(full.position).toBe(pointer!.position);

    const all = await h.readAll();
    expect(all.some((e) => e.table === 'audit_log' || e.db === 'other')).toBe(false);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });
});
