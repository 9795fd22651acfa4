/**
 * runPluginProcess (what the executable does when Terraform starts it), in-process: the provider's own code
 * arrives through a factory that is evaluated on the first RPC, after the handshake line, so a start-up pays
 * only for the plugin host. Checked with an independent gRPC client (@grpc/grpc-js, a dev dependency).
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as m from '../../provider/wire/messages.js';
import { runPluginProcess } from '../../provider/wire/plugin-process.js';
import { decodeMessage, encodeMessage, type Msg } from '../../provider/wire/protobuf.js';
import {
  MAGIC_COOKIE_KEY,
  MAGIC_COOKIE_VALUE,
  PROVIDER_RPCS,
  type ProviderRpcHandlers,
  type ProviderRpcName,
} from '../../provider/wire/serve.js';

const identity = { address: 'registry.terraform.io/example/lazy', version: '9.9.9' };

interface Started {
  readonly handshake: string;
  readonly stderr: () => string;
  call(rpc: ProviderRpcName, request?: Msg): Promise<Msg>;
  shutdown(): Promise<number>;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function start(handlers: () => Promise<ProviderRpcHandlers>): Promise<Started> {
  let stdout = '';
  let stderr = '';
  let exited: (code: number) => void = () => {};
  const exitCode = new Promise<number>((resolve) => {
    exited = resolve;
  });
  await runPluginProcess(identity, handlers, {
    argv: [],
    // Plaintext over TCP on 127.0.0.1 (no PLUGIN_CLIENT_CERT), so the test client needs no certificate.
    env: {
      [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE,
      PLUGIN_PROTOCOL_VERSIONS: '6',
      CLOUDTASER_PROVIDER_NETWORK: 'tcp',
    },
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    exit: (code) => exited(code),
  });
  const fields = stdout.trim().split('|');
  const client = new grpc.Client(fields[3], grpc.credentials.createInsecure());
  const unary = (path: string, req: (typeof PROVIDER_RPCS)[ProviderRpcName][0], res: typeof req, body: Msg) =>
    new Promise<Msg>((resolve, reject) => {
      client.makeUnaryRequest(
        path,
        (v: Msg) => Buffer.from(encodeMessage(req, v)),
        (b: Buffer) => decodeMessage(res, b),
        body,
        (err, value) => (err ? reject(err) : resolve(value!)),
      );
    });
  let down = false;
  const shutdown = async () => {
    if (!down) {
      down = true;
      await unary('/plugin.GRPCController/Shutdown', m.Empty, m.Empty, {});
      client.close();
    }
    return exitCode;
  };
  cleanups.push(shutdown);
  return {
    handshake: stdout,
    stderr: () => stderr,
    call: (rpc, request = {}) => {
      const [req, res] = PROVIDER_RPCS[rpc];
      return unary(`/tfplugin6.Provider/${rpc}`, req, res, request);
    },
    shutdown,
  };
}

describe('runPluginProcess with the provider code loaded on the first RPC', () => {
  it('prints the handshake without evaluating the provider, then loads it once for concurrent first RPCs', async () => {
    const load = vi.fn(
      async (): Promise<ProviderRpcHandlers> => ({
        GetProviderSchema: () => ({ provider: { version: 7 } }),
      }),
    );
    const p = await start(load);
    expect(p.handshake).toMatch(/^1\|6\|tcp\|127\.0\.0\.1:\d+\|grpc\|\n$/);
    expect(load).not.toHaveBeenCalled();
    const answers = await Promise.all([p.call('GetProviderSchema'), p.call('GetProviderSchema')]);
    expect(answers.map((a) => (a.provider as Msg).version)).toEqual([7, 7]);
    await p.call('GetProviderSchema');
    expect(load).toHaveBeenCalledTimes(1);
    expect(await p.shutdown()).toBe(0);
  });

  it('answers UNIMPLEMENTED for an RPC the loaded provider does not handle', async () => {
    const p = await start(async () => ({ GetProviderSchema: () => ({}) }));
    await expect(p.call('MoveResourceState')).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
      details: expect.stringContaining('MoveResourceState is not implemented'),
    });
  });

  it('fails every RPC with the load error, and logs provider_load_failed once per RPC, when the provider cannot load', async () => {
    const p = await start(async () => {
      throw new Error('cannot evaluate provider: boom');
    });
    for (const rpc of ['GetProviderSchema', 'ValidateProviderConfig'] as const) {
      await expect(p.call(rpc)).rejects.toMatchObject({
        details: expect.stringContaining('cannot evaluate provider: boom'),
      });
    }
    const lines = p
      .stderr()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === 'provider_load_failed');
    expect(lines.map((l) => l.rpc)).toEqual(['GetProviderSchema', 'ValidateProviderConfig']);
    // The Shutdown RPC is the wire layer's own and still works, so Terraform can stop the process cleanly.
    expect(await p.shutdown()).toBe(0);
  });
});
