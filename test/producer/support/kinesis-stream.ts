import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';

/** Creates a stream in the emulator and waits until it is ACTIVE. */
export async function createActiveStream(client: KinesisClient, name: string, shards: number): Promise<void> {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  await waitActive(client, name);
}

export async function waitActive(client: KinesisClient, name: string): Promise<void> {
  for (;;) {
    const d = await client.send(new DescribeStreamCommand({ StreamName: name }));
    if (d.StreamDescription!.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every record of every shard of a stream, as written (partition key and data as text), shard by shard. */
export async function readStreamRaw(
  client: KinesisClient,
  name: string,
): Promise<{ partitionKey: string; data: string }[]> {
  const desc = await client.send(new DescribeStreamCommand({ StreamName: name }));
  const out: { partitionKey: string; data: string }[] = [];
  for (const s of desc.StreamDescription!.Shards!) {
    let it = (
      await client.send(
        new GetShardIteratorCommand({ StreamName: name, ShardId: s.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }),
      )
    ).ShardIterator;
    for (;;) {
      const r = await client.send(new GetRecordsCommand({ ShardIterator: it! }));
      for (const rec of r.Records ?? [])
        out.push({ partitionKey: rec.PartitionKey!, data: Buffer.from(rec.Data!).toString('utf8') });
      if (!r.Records?.length) break;
      it = r.NextShardIterator;
    }
  }
  return out;
}

/** Every record of every shard of a stream written by the sink tests (`{key, seq}` JSON), shard by shard. */
export async function readStream(client: KinesisClient, name: string): Promise<{ key: string; seq: number }[]> {
  return (await readStreamRaw(client, name)).map((r) => JSON.parse(r.data) as { key: string; seq: number });
}
