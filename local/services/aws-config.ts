import { NodeHttpHandler } from '@smithy/node-http-handler';

/**
 * SDK v3 client settings for a local emulator endpoint. Used only where configuration names an endpoint; in AWS the
 * clients take the SDK defaults.
 * - HTTP/1.1 NodeHttpHandler: kinesalite does not work with the SDK's default handler settings otherwise.
 * - Checksums only when required: s3rver stores the aws-chunked body verbatim otherwise (silently corrupt objects).
 * - Path-style S3 addressing: the emulator has no virtual-host DNS.
 */
export function localAwsClientConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    // s3rver accepts only this key pair; the other emulators accept any.
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 60_000 }),
    requestChecksumCalculation: 'WHEN_REQUIRED' as const,
    responseChecksumValidation: 'WHEN_REQUIRED' as const,
    forcePathStyle: true,
  };
}
