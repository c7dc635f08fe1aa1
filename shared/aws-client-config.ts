import { NodeHttpHandler } from '@smithy/node-http-handler';

/**
 * SDK v3 client settings for an endpoint override (`AWS_ENDPOINT_KINESIS`, `AWS_ENDPOINT_S3`, … in a runtime's
 * configuration): the local emulators, or any S3/Kinesis/DynamoDB-compatible endpoint. Without an override the clients
 * take the SDK defaults (AWS). Each runtime builds its clients from its own environment with this; the local runtime
 * only sets the environment variables.
 * - HTTP/1.1 NodeHttpHandler: the Kinesis client defaults to HTTP/2, which kinesalite does not speak.
 * - Checksums only when required: s3rver stores an aws-chunked body verbatim otherwise (silently corrupt objects).
 * - Path-style S3 addressing: an endpoint override has no virtual-host DNS.
 * - Fixed region and credentials: the emulators accept any (s3rver only this key pair).
 */
export function endpointOverrideConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 60_000 }),
    requestChecksumCalculation: 'WHEN_REQUIRED' as const,
    responseChecksumValidation: 'WHEN_REQUIRED' as const,
    forcePathStyle: true,
  };
}

/** `endpointOverrideConfig` for an optional override: the SDK defaults (`{}`) without one. */
export function clientConfig(endpoint: string | undefined) {
  return endpoint ? endpointOverrideConfig(endpoint) : {};
}
