/**
 * A ClusterIP Service stand-in for replicas that listen on one port at several loopback addresses (a Deployment's
 * pods behind a Service): a TCP proxy that sends each connection to the replica `target` names. Setting a target
 * ends the open connections (clients keep them alive), so the next request surely goes there.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export interface ServiceProxy {
  readonly server: Server;
  /** https://localhost:<port>: the replicas' certificates name localhost. */
  readonly url: string;
  /** Index into the replica addresses of where new connections go. */
  target: number;
  /** Connections sent to each replica so far. */
  readonly connections: number[];
  close(): Promise<void>;
}

export async function startServiceProxy(port: number, replicaIps: readonly string[]): Promise<ServiceProxy> {
  const open = new Set<Socket>();
  let target = 0;
  const connections = replicaIps.map(() => 0);
  const server = createServer((client: Socket) => {
    const index = target;
    connections[index]++;
    open.add(client);
    client.on('close', () => open.delete(client));
    const upstream = tcpConnect(port, replicaIps[index]);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address() as { port: number };
  return {
    server,
    url: `https://localhost:${address.port}`,
    connections,
    get target() {
      return target;
    },
    set target(value: number) {
      target = value;
      for (const socket of open) socket.destroy();
    },
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
