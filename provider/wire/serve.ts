/**
 * The go-plugin "serve" layer: magic cookie, version negotiation, listener (unix socket or TCP), AutoMTLS,
 * the handshake line, go-plugin's controller/stdio/health services and the Terraform provider service.
 * It knows nothing about Terraform semantics; the framework hands it one handler per RPC.
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CloudtaserError } from '../../runtime/core/errors.js';
import { createAutoMtlsCertificate } from './automtls-cert.js';
import { createHclogLogger, type ProviderLogger } from './hclog.js';
import * as m from './messages.js';
import { decodeMessage, encodeMessage, type MessageSpec, type Msg } from './protobuf.js';

export const MAGIC_COOKIE_KEY = 'TF_PLUGIN_MAGIC_COOKIE';
export const MAGIC_COOKIE_VALUE = 'd602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2';
export const PLUGIN_PROTOCOL_VERSION = 6;
/** Requests carry whole configurations and states; grpc-js's 4 MiB default is far too small. */
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
  /** One handler per tfplugin6 RPC; missing ones answer UNIMPLEMENTED. */
  readonly handlers: ProviderRpcHandlers;
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
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  const openStdioStreams = new Set<grpc.ServerWritableStream<Msg, Msg>>();
  let closed = false;
  let socketPath: string | undefined;

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const stream of openStdioStreams) stream.end();
    openStdioStreams.clear();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 250);
      force.unref();
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    if (socketPath) removeSocket(socketPath);
  };

  // tfplugin6.Provider
  const providerService: Record<string, grpc.MethodDefinition<Msg, Msg>> = {};
  const providerImpl: grpc.UntypedServiceImplementation = {};
  for (const [name, [requestSpec, responseSpec]] of Object.entries(PROVIDER_RPCS)) {
    providerService[name] = unaryDefinition(`/tfplugin6.Provider/${name}`, requestSpec, responseSpec);
    const handler = options.handlers[name as ProviderRpcName];
    providerImpl[name] = (call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) => {
      if (!handler) {
        callback({ code: grpc.status.UNIMPLEMENTED, details: `${name} is not implemented by this provider` });
        return;
      }
      Promise.resolve()
        .then(() => handler(call.request))
        .then(
          (response) => callback(null, response),
          (err: unknown) => {
            logger.error('rpc_failed', 'an RPC handler threw', { rpc: name, error: (err as Error).message });
            callback({ code: grpc.status.INTERNAL, details: (err as Error).message });
          },
        );
    };
  }
  server.addService(providerService, providerImpl);

  // plugin.GRPCController: Terraform calls Shutdown once per process; without it, it waits 2 s and SIGKILLs.
  server.addService(
    { Shutdown: unaryDefinition('/plugin.GRPCController/Shutdown', m.Empty, m.Empty) },
    {
      Shutdown: (_call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) => {
        logger.debug('shutdown_requested', 'Terraform asked the provider to shut down');
        callback(null, {});
        setImmediate(() => {
          void close().then(() => options.onShutdown?.());
        });
      },
    },
  );

  // plugin.GRPCStdio: kept open and empty; we never write to stdout after the handshake.
  server.addService(
    {
      StreamStdio: {
        path: '/plugin.GRPCStdio/StreamStdio',
        requestStream: false,
        responseStream: true,
        requestSerialize: serializer(m.Empty),
        requestDeserialize: deserializer(m.Empty),
        responseSerialize: serializer(m.StdioData),
        responseDeserialize: deserializer(m.StdioData),
      },
    },
    {
      StreamStdio: (stream: grpc.ServerWritableStream<Msg, Msg>) => {
        if (closed) {
          stream.end();
          return;
        }
        openStdioStreams.add(stream);
        stream.on('cancelled', () => openStdioStreams.delete(stream));
      },
    },
  );

  // grpc.health.v1.Health: go-plugin documents service "plugin" = SERVING.
  server.addService(
    { Check: unaryDefinition('/grpc.health.v1.Health/Check', m.HealthCheckRequest, m.HealthCheckResponse) },
    {
      Check: (_call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) =>
        callback(null, { status: 1 }),
    },
  );

  let certField = '';
  let credentials = grpc.ServerCredentials.createInsecure();
  if (options.clientCertPem) {
    const cert = createAutoMtlsCertificate();
    // Terraform's per-process client certificate is the only CA we trust, and a client cert is required.
    credentials = grpc.ServerCredentials.createSsl(
      Buffer.from(options.clientCertPem),
      [{ private_key: Buffer.from(cert.keyPem), cert_chain: Buffer.from(cert.certPem) }],
      true,
    );
    certField = handshakeCertField(cert.certDer);
  }

  let address: string;
  if (network === 'unix') {
    socketPath = join(tmpdir(), `plugin-cloudtaser-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
    if (Buffer.byteLength(socketPath) > 100) {
      throw new CloudtaserError(
        'CT_INVALID_ARGUMENT',
        `socket path ${socketPath} is too long for a unix socket; set TMPDIR to a shorter directory`,
      );
    }
    await bind(server, `unix:${socketPath}`, credentials);
    address = socketPath;
  } else {
    const [min, max] = options.portRange ?? [0, 0];
    address = await bindTcp(server, credentials, min, max);
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

function serializer(spec: MessageSpec): (value: Msg) => Buffer {
  return (value) => {
    const bytes = encodeMessage(spec, value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(spec: MessageSpec): (data: Buffer) => Msg {
  return (data) => decodeMessage(spec, data);
}

function unaryDefinition(path: string, requestSpec: MessageSpec, responseSpec: MessageSpec) {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: serializer(requestSpec),
    requestDeserialize: deserializer(requestSpec),
    responseSerialize: serializer(responseSpec),
    responseDeserialize: deserializer(responseSpec),
  } satisfies grpc.MethodDefinition<Msg, Msg>;
}

function bind(server: grpc.Server, target: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(target, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

async function bindTcp(server: grpc.Server, credentials: grpc.ServerCredentials, min: number, max: number) {
  if (!min || !max || max < min) {
    const port = await bind(server, '127.0.0.1:0', credentials);
    return `127.0.0.1:${port}`;
  }
  for (let port = min; port <= max; port++) {
    try {
      await bind(server, `127.0.0.1:${port}`, credentials);
      return `127.0.0.1:${port}`;
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
