/**
 * The local emulators' client settings: the runtimes' own endpoint-override settings (shared/aws-client-config.ts),
 * under the name the local runtime, the tests and the benchmarks use.
 */
export { endpointOverrideConfig as localAwsClientConfig } from '../../shared/aws-client-config';
