/**
 * Launches a provider executable exactly as Terraform does (cookie, offered versions, a client certificate
 * for AutoMTLS) and connects a gRPC client to it, so tests and benchmarks can call RPCs directly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import * as m from '../../../provider/wire/messages.js';
import { decodeMessage, encodeMessage, type MessageSpec, type Msg } from '../../../provider/wire/protobuf.js';
import {
  MAGIC_COOKIE_KEY,
  MAGIC_COOKIE_VALUE,
  PROVIDER_RPCS,
  type ProviderRpcName,
} from '../../../provider/wire/serve.js';
import { issueSelfSignedSync } from '../../../runtime/pki/index.js';

export interface LaunchedProvider {
  readonly child: ChildProcess;
  readonly handshakeLine: string;
  readonly fields: string[];
  readonly msToHandshake: number;
  call(rpc: ProviderRpcName, request?: Msg): Promise<Msg>;
  shutdown(): Promise<number | null>;
  exited: Promise<number | null>;
  kill(): void;
  stderr(): string;
}

export interface LaunchOptions {
  readonly tls?: boolean;
  readonly env?: Record<string, string>;
  readonly network?: 'unix' | 'tcp';
}

export async function launchProvider(
  executable: string,
  options: LaunchOptions = {},
): Promise<LaunchedProvider> {
  const tls = options.tls ?? true;
  const client = tls ? issueSelfSignedSync({ commonName: 'localhost', dnsNames: ['localhost'] }) : undefined;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE,
    PLUGIN_PROTOCOL_VERSIONS: '5,6',
    PLUGIN_MIN_PORT: '10000',
    PLUGIN_MAX_PORT: '25000',
    ...(client ? { PLUGIN_CLIENT_CERT: client.certPem } : {}),
    ...(options.network === 'tcp' ? { CLOUDTASER_PROVIDER_NETWORK: 'tcp' } : {}),
    ...options.env,
  };
  const started = performance.now();
  const child = spawn(executable, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const handshakeLine = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.on('exit', (code) =>
      reject(new Error(`provider exited with ${code} before the handshake: ${stderr}${out}`)),
    );
  });
  const msToHandshake = performance.now() - started;
  const fields = handshakeLine.split('|');
  const target = fields[2] === 'unix' ? `unix:${fields[3]}` : fields[3];
  let credentials = grpc.credentials.createInsecure();
  if (client && fields[5]) {
    const padded = fields[5] + '='.repeat((4 - (fields[5].length % 4)) % 4);
    const serverPem = `-----BEGIN CERTIFICATE-----\n${(padded.match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`;
    credentials = grpc.credentials.createSsl(
      Buffer.from(serverPem),
      Buffer.from(client.keyPem),
      Buffer.from(client.certPem),
    );
  }
  const channelOptions = {
    'grpc.ssl_target_name_override': 'localhost',
    'grpc.default_authority': 'localhost',
  };
  const rpcClient = new grpc.Client(target, credentials, channelOptions);
  const unary = (path: string, req: MessageSpec, res: MessageSpec, body: Msg) =>
    new Promise<Msg>((resolve, reject) => {
      rpcClient.makeUnaryRequest(
        path,
        (v: Msg) => Buffer.from(encodeMessage(req, v)),
        (b: Buffer) => decodeMessage(res, b),
        body,
        (err, value) => (err ? reject(err) : resolve(value!)),
      );
    });
  return {
    child,
    handshakeLine,
    fields,
    msToHandshake,
    exited,
    stderr: () => stderr,
    call: (rpc, request = {}) => {
      const [req, res] = PROVIDER_RPCS[rpc];
      return unary(`/tfplugin6.Provider/${rpc}`, req, res, request);
    },
    shutdown: async () => {
      await unary('/plugin.GRPCController/Shutdown', m.Empty, m.Empty, {});
      rpcClient.close();
      return exited;
    },
    kill: () => {
      rpcClient.close();
      child.kill('SIGKILL');
    },
  };
}
