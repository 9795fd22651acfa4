/**
 * The go-plugin "serve" layer: magic cookie, version negotiation, listener (unix socket or TCP), AutoMTLS,
 * the handshake line, go-plugin's controller/stdio/health services and the Terraform provider service.
 * It knows nothing about Terraform semantics; the framework hands it one handler per RPC.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { createAutoMtlsCertificate } from './automtls-cert.js';
import {
  createGrpcServer,
  GrpcError,
  type GrpcServer,
  GrpcStatus,
  type IdleStreamMethod,
  type UnaryMethod,
} from './grpc-server.js';
import { createHclogLogger, type ProviderLogger } from './hclog.js';
import * as m from './messages.js';
import { decodeMessage, encodeMessage, type MessageSpec, type Msg } from './protobuf.js';

export const MAGIC_COOKIE_KEY = 'TF_PLUGIN_MAGIC_COOKIE';
export const MAGIC_COOKIE_VALUE = 'd602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2';
export const PLUGIN_PROTOCOL_VERSION = 6;
/** Requests carry whole configurations and states (Terraform itself allows up to 2 GiB); 256 MiB as terraform-plugin-go. */
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/** Every tfplugin6 RPC: name -> [request, response] message tables. */
export const PROVIDER_RPCS = {
  GetMetadata: [m.GetMetadataRequest, m.GetMetadataResponse],
  GetProviderSchema: [m.GetProviderSchemaRequest, m.GetProviderSchemaResponse],
  ValidateProviderConfig: [m.ValidateProviderConfigRequest, m.ValidateProviderConfigResponse],
  ValidateResourceConfig: [m.ValidateResourceConfigRequest, m.ValidateResourceConfigResponse],
  ValidateDataResourceConfig: [m.ValidateDataResourceConfigRequest, m.ValidateDataResourceConfigResponse],
  UpgradeResourceState: [m.UpgradeResourceStateRequest, m.UpgradeResourceStateResponse],
  ConfigureProvider: [m.ConfigureProviderRequest, m.ConfigureProviderResponse],
  ReadResource: [m.ReadResourceRequest, m.ReadResourceResponse],
  PlanResourceChange: [m.PlanResourceChangeRequest, m.PlanResourceChangeResponse],
  ApplyResourceChange: [m.ApplyResourceChangeRequest, m.ApplyResourceChangeResponse],
  ImportResourceState: [m.ImportResourceStateRequest, m.ImportResourceStateResponse],
  MoveResourceState: [m.MoveResourceStateRequest, m.MoveResourceStateResponse],
  ReadDataSource: [m.ReadDataSourceRequest, m.ReadDataSourceResponse],
  GetFunctions: [m.Empty, m.GetFunctionsResponse],
  CallFunction: [m.CallFunctionRequest, m.CallFunctionResponse],
  StopProvider: [m.Empty, m.StopProviderResponse],
} as const satisfies Record<string, readonly [MessageSpec, MessageSpec]>;

export type ProviderRpcName = keyof typeof PROVIDER_RPCS;
export type ProviderRpcHandlers = Partial<Record<ProviderRpcName, (request: Msg) => Promise<Msg> | Msg>>;

export interface StartPluginServerOptions {
  /**
   * One handler per tfplugin6 RPC; missing ones answer UNIMPLEMENTED. A function is called once, on the first
   * RPC, so the provider's own code need not be evaluated before the handshake line.
   */
  readonly handlers: ProviderRpcHandlers | (() => Promise<ProviderRpcHandlers>);
  /** Provider source address(es), used as keys of the reattach configuration (one process serves them all). */
  readonly providerAddress: string | readonly string[];
  /** `unix` (default) or `tcp` on 127.0.0.1. */
  readonly network?: 'unix' | 'tcp';
  /** Terraform's client certificate (PEM). When set, AutoMTLS is on and the handshake carries our cert. */
  readonly clientCertPem?: string;
  /** TCP port range (PLUGIN_MIN_PORT/PLUGIN_MAX_PORT); 0/0 lets the OS choose. */
  readonly portRange?: readonly [number, number];
  /** Called after GRPCController.Shutdown has been answered. */
  readonly onShutdown?: () => void;
  readonly logger?: ProviderLogger;
}

export interface PluginServerHandle {
  /** `1|6|unix|/tmp/plugin-....sock|grpc|<cert>`, without the newline. */
  readonly handshakeLine: string;
  readonly network: 'unix' | 'tcp';
  readonly address: string;
  /** Value for TF_REATTACH_PROVIDERS (plaintext only: Terraform never does TLS when reattaching). */
  readonly reattachConfig: string;
  close(): Promise<void>;
}

/** Base64 of the DER certificate without `=` padding, as Go's RawStdEncoding writes it. */
export function handshakeCertField(certDer: Uint8Array): string {
  return Buffer.from(certDer).toString('base64').replace(/=+$/, '');
}

export async function startPluginServer(options: StartPluginServerOptions): Promise<PluginServerHandle> {
  const logger = options.logger ?? createHclogLogger();
  const network = options.network ?? (process.platform === 'win32' ? 'tcp' : 'unix');
  let closed = false;
  let socketPath: string | undefined;

  const methods = new Map<string, UnaryMethod | IdleStreamMethod>();
  const unary = (
    path: string,
    requestSpec: MessageSpec,
    responseSpec: MessageSpec,
    handle: UnaryMethod['handle'],
  ) =>
    methods.set(path, {
      decode: (bytes) => decodeMessage(requestSpec, bytes),
      encode: (message) => encodeMessage(responseSpec, message),
      handle,
    });

  // tfplugin6.Provider. With eager handlers only the RPCs that have one exist; lazy ones are looked up on call.
  let loaded: Promise<ProviderRpcHandlers> | undefined;
  const handlersNow = (): Promise<ProviderRpcHandlers> => {
    const given = options.handlers;
    loaded ??= typeof given === 'function' ? given() : Promise.resolve(given);
    return loaded;
  };
  for (const [name, [requestSpec, responseSpec]] of Object.entries(PROVIDER_RPCS)) {
    if (typeof options.handlers !== 'function' && !options.handlers[name as ProviderRpcName]) continue;
    unary(`/tfplugin6.Provider/${name}`, requestSpec, responseSpec, async (request) => {
      let handler: ProviderRpcHandlers[ProviderRpcName];
      try {
        handler = (await handlersNow())[name as ProviderRpcName];
      } catch (err) {
        // Every RPC of this process fails the same way; Terraform shows the message as the RPC's error.
        logger.error('provider_load_failed', 'the provider code failed to load', {
          rpc: name,
          error: (err as Error).message,
        });
        throw err;
      }
      if (!handler)
        throw new GrpcError(GrpcStatus.UNIMPLEMENTED, `${name} is not implemented by this provider`);
      try {
        return await handler(request);
      } catch (err) {
        logger.error('rpc_failed', 'an RPC handler threw', { rpc: name, error: (err as Error).message });
        throw err;
      }
    });
  }
  // plugin.GRPCController: Terraform calls Shutdown once per process; without it, it waits 2 s and SIGKILLs.
  unary('/plugin.GRPCController/Shutdown', m.Empty, m.Empty, () => {
    logger.debug('shutdown_requested', 'Terraform asked the provider to shut down');
    setImmediate(() => {
      void close().then(() => options.onShutdown?.());
    });
    return {};
  });
  // plugin.GRPCStdio: kept open and empty; we never write to stdout after the handshake.
  methods.set('/plugin.GRPCStdio/StreamStdio', { idleStream: true });
  // grpc.health.v1.Health: go-plugin documents service "plugin" = SERVING.
  unary('/grpc.health.v1.Health/Check', m.HealthCheckRequest, m.HealthCheckResponse, () => ({ status: 1 }));

  let certField = '';
  let tls: { key: string; cert: string; clientCert: string } | undefined;
  if (options.clientCertPem) {
    const cert = createAutoMtlsCertificate();
    // Terraform's per-process client certificate is the only client we accept.
    tls = { key: cert.keyPem, cert: cert.certPem, clientCert: options.clientCertPem };
    certField = handshakeCertField(cert.certDer);
  }
  const server = createGrpcServer({
    methods,
    maxMessageBytes: MAX_MESSAGE_BYTES,
    tls,
    onError: (event, fields) => logger.debug(event, 'gRPC transport event', fields),
  });

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await server.close(250);
    if (socketPath) removeSocket(socketPath);
  };

  let address: string;
  if (network === 'unix') {
    socketPath = join(tmpdir(), `plugin-cloudtaser-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
    if (Buffer.byteLength(socketPath) > 100) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `socket path ${socketPath} is too long for a unix socket; set TMPDIR to a shorter directory`,
      );
    }
    await server.listen({ path: socketPath });
    address = socketPath;
  } else {
    const [min, max] = options.portRange ?? [0, 0];
    address = await listenTcp(server, min, max);
  }

  const handshakeLine = `1|${PLUGIN_PROTOCOL_VERSION}|${network}|${address}|grpc|${certField}`;
  const reattachEntry = {
    Protocol: 'grpc',
    ProtocolVersion: PLUGIN_PROTOCOL_VERSION,
    Pid: process.pid,
    Test: true,
    Addr: { Network: network, String: address },
  };
  const addresses =
    typeof options.providerAddress === 'string' ? [options.providerAddress] : options.providerAddress;
  const reattachConfig = JSON.stringify(Object.fromEntries(addresses.map((key) => [key, reattachEntry])));
  logger.debug('listening', 'provider is serving', { network, address, tls: certField !== '' });
  return { handshakeLine, network, address, reattachConfig, close };
}

async function listenTcp(server: GrpcServer, min: number, max: number): Promise<string> {
  if (!min || !max || max < min) return server.listen({ port: 0 });
  for (let port = min; port <= max; port++) {
    try {
      return await server.listen({ port });
    } catch {
      // port taken: try the next one, as go-plugin does
    }
  }
  throw new CloudtaserError('CT_INTERNAL', `no free TCP port between ${min} and ${max} on 127.0.0.1`);
}

function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
