import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll } from 'vitest';
import { CheckpointStore } from '../../../containers/producer/src/checkpoint-store';
import { localAwsClientConfig } from '../../../local/services/aws-config';
import { createCheckpointTable } from '../../../local/services/checkpoint-table';
import { type Emulator, startEmulator } from '../../../local/services/emulators';

export const CHECKPOINT_TABLE = 'cdc-checkpoints';

/**
 * A dynalite with the checkpoint table for the whole test file (started before its tests, stopped after): the
 * client, and a store for a pipeline and owner.
 */
export function useCheckpointTable(): {
  client: () => DynamoDBClient;
  store: (pipelineId: string, owner: string) => CheckpointStore;
} {
  let emu: Emulator | undefined;
  let client: DynamoDBClient | undefined;
  beforeAll(async () => {
    emu = await startEmulator('dynamodb');
    client = new DynamoDBClient(localAwsClientConfig(emu.endpoint));
    await createCheckpointTable(client, CHECKPOINT_TABLE);
  });
  afterAll(async () => {
    client?.destroy();
    await emu?.stop();
  });
  return {
    client: () => client!,
    store: (pipelineId, owner) =>
      new CheckpointStore({ client: client!, tableName: CHECKPOINT_TABLE, pipelineId, owner, leaseMs: 30_000 }),
  };
}
