/**
 * The provider's own gRPC server (node:http2), checked against an independent client (@grpc/grpc-js, a dev
 * dependency) for what go-plugin and Terraform rely on, and for hostile input: unknown methods, oversized and
 * compressed messages, a request that is not one message, a handler that throws, a non-gRPC request.
 */
import { connect } from 'node:http2';
import { connect as connectSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createGrpcServer,
  encodeGrpcMessage,
  frame,
  GrpcError,
  type GrpcServer,
  GrpcStatus,
  type IdleStreamMethod,
  type UnaryMethod,
} from '../../provider/wire/grpc-server.js';

const text = {
  decode: (bytes: Uint8Array) => ({ text: Buffer.from(bytes).toString('utf8') }),
  encode: (message: { text?: string }) => Buffer.from(message.text ?? '', 'utf8'),
};

describe('minimal gRPC server on node:http2', () => {
  let server: GrpcServer;
  let client: grpc.Client;
  const socket = join(tmpdir(), `ct-grpc-${process.pid}.sock`);

  beforeAll(async () => {
    server = createGrpcServer({
      maxMessageBytes: 1024,
      methods: new Map<string, UnaryMethod | IdleStreamMethod>([
        [
          '/t.S/Echo',
          { ...text, handle: (request: { text?: string }) => ({ text: `echo:${request.text}` }) },
        ],
        [
          '/t.S/Fail',
          {
            ...text,
            handle: () => {
              throw new Error('boom: 100% broken\nsecond line ü');
            },
          },
        ],
        [
          '/t.S/Status',
          {
            ...text,
            handle: () => {
              throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'bad');
            },
          },
        ],
        ['/t.S/Idle', { idleStream: true }],
      ]),
    });
    await server.listen({ path: socket });
    client = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  const call = (path: string, body: string) =>
    new Promise<{ error: grpc.ServiceError | null; value?: string }>((resolve) => {
      client.makeUnaryRequest(
        path,
        (v: string) => Buffer.from(v),
        (b: Buffer) => b.toString('utf8'),
        body,
        (error, value) => resolve({ error, value }),
      );
    });

  it('answers a unary call with the handler result and status OK', async () => {
    expect(await call('/t.S/Echo', 'hi')).toEqual({ error: null, value: 'echo:hi' });
  });

  it('answers an unknown method UNIMPLEMENTED, as go-plugin expects for services it only tries', async () => {
    const { error } = await call('/plugin.GRPCBroker/StartStream', '');
    expect(error?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(error?.details).toContain('/plugin.GRPCBroker/StartStream is not implemented');
  });

  it('turns a throwing handler into INTERNAL with the message percent-encoded and decoded intact', async () => {
    const { error } = await call('/t.S/Fail', '');
    expect(error?.code).toBe(grpc.status.INTERNAL);
    expect(error?.details).toBe('boom: 100% broken\nsecond line ü');
    expect(encodeGrpcMessage('a%b\n')).toBe('a%25b%0A');
    expect((await call('/t.S/Status', '')).error?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('refuses a message larger than the limit with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const { error } = await call('/t.S/Echo', 'x'.repeat(5000));
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(await call('/t.S/Echo', 'after')).toEqual({ error: null, value: 'echo:after' });
  });

  /** Sends raw frames over plain HTTP/2 and returns the response headers and trailers. */
  const raw = (path: string, body: Buffer, contentType = 'application/grpc') =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const session = connect('http://localhost', { createConnection: () => connectSocket(socket) });
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': contentType });
      const result: Record<string, unknown> = {};
      stream.on('response', (headers) => Object.assign(result, headers));
      stream.on('trailers', (trailers) => Object.assign(result, trailers));
      stream.on('error', reject);
      stream.on('close', () => {
        session.close();
        resolve(result);
      });
      stream.resume();
      stream.end(body);
    });

  it('refuses compressed messages, two messages in one unary call and a truncated frame', async () => {
    const compressed = frame(Buffer.from('x'));
    compressed[0] = 1;
    expect((await raw('/t.S/Echo', compressed))['grpc-status']).toBe(String(GrpcStatus.UNIMPLEMENTED));
    const two = Buffer.concat([frame(Buffer.from('a')), frame(Buffer.from('b'))]);
    expect((await raw('/t.S/Echo', two))['grpc-status']).toBe(String(GrpcStatus.INTERNAL));
    expect((await raw('/t.S/Echo', frame(Buffer.from('abc')).subarray(0, 6)))['grpc-status']).toBe(
      String(GrpcStatus.INTERNAL),
    );
    expect((await raw('/t.S/Echo', Buffer.alloc(0)))['grpc-status']).toBe(String(GrpcStatus.INTERNAL));
  });

  it('answers a request that is not gRPC with HTTP 415', async () => {
    expect((await raw('/t.S/Echo', Buffer.from('{}'), 'application/json'))[':status']).toBe(415);
  });

  it('keeps an idle server stream open until close, then ends it with status OK', async () => {
    const local = createGrpcServer({
      maxMessageBytes: 1024,
      methods: new Map([['/t.S/Idle', { idleStream: true }]]),
    });
    const path = join(tmpdir(), `ct-grpc-idle-${process.pid}.sock`);
    await local.listen({ path });
    const idleClient = new grpc.Client(`unix:${path}`, grpc.credentials.createInsecure());
    const stream = idleClient.makeServerStreamRequest(
      '/t.S/Idle',
      () => Buffer.alloc(0),
      (b: Buffer) => b,
      {},
    );
    const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('data', () => {});
    await new Promise<void>((resolve) => stream.on('metadata', () => resolve()));
    await local.close();
    expect((await ended).code).toBe(grpc.status.OK);
    idleClient.close();
  });
});
