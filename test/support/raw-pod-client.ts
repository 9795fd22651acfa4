/**
 * Raw pod connections to a pod API server without TLS (`tls: false`), for the tests of its bounds: a client may
 * come from any loopback source address (127.0.0.2, 127.0.0.3 ... play other pods) and send bytes exactly as
 * written (half-sent bodies, pipelined requests). Every socket made is pushed to `sockets` for the test's cleanup.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { Logger } from '../../runtime/core/log.js';
import type { PodApiLimits, PodApiServer, PodApiServerOptions } from '../../runtime/podapi/server.js';
import { startPodApiServer } from '../../runtime/podapi/server.js';

export interface RawPodClient {
  readonly socket: Socket;
  /** Everything the server sent so far, as text. */
  answer(): string;
  closed: boolean;
}

/** A plain-HTTP pod API on loopback with these bounds; no tunnel unless one is given. */
export function startPlainPodApi(options: {
  limits?: Partial<PodApiLimits>;
  tunnel?: PodApiServerOptions['tunnel'];
  nextTunnel?: PodApiServerOptions['nextTunnel'];
  refusal?: PodApiServerOptions['refusal'];
  noTunnelReason?: PodApiServerOptions['noTunnelReason'];
  logger?: Logger;
}): Promise<PodApiServer> {
  return startPodApiServer({
    host: '127.0.0.1',
    port: 0,
    tls: false,
    tunnel: options.tunnel ?? (() => undefined),
    nextTunnel: options.nextTunnel,
    refusal: options.refusal,
    noTunnelReason: options.noTunnelReason,
    limits: options.limits,
    logger: options.logger,
  });
}

export async function openRaw(port: number, sockets: Socket[], from = '127.0.0.1'): Promise<RawPodClient> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from });
  sockets.push(socket);
  socket.on('error', () => undefined);
  let text = '';
  const client: RawPodClient = { socket, answer: () => text, closed: false };
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  socket.on('close', () => {
    client.closed = true;
  });
  await once(socket, 'connect');
  return client;
}

/** A login POST announcing `bodyBytes` whose body stops one byte short: the server holds what arrived. */
export async function halfSentLogin(
  port: number,
  bodyBytes: number,
  sockets: Socket[],
  from?: string,
): Promise<RawPodClient> {
  const client = await openRaw(port, sockets, from);
  client.socket.write(
    `POST /v1/auth/kubernetes/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${bodyBytes}\r\n\r\n`,
  );
  client.socket.write(Buffer.alloc(bodyBytes - 1, 0x20));
  return client;
}
