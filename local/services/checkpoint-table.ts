import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/**
 * Creates the producer's checkpoint table in the DynamoDB emulator, with the key the CDK stack gives it
 * (lib/constructs/checkpoint-table.ts: `pk` = pipeline id, `sk` = item kind). An existing table is kept.
 */
export async function createCheckpointTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client
    .send(
      new CreateTableCommand({
        TableName: tableName,
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    )
    .catch((err: Error) => {
      if (!/ResourceInUse|exists/i.test(err.name + err.message)) throw err;
    });
}
