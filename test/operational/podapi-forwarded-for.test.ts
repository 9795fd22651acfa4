/**
 * Per-address rate-limit quotas in OpenBao count per client address. Through cloudtaser every pod of every cluster
 * arrives from the bridge's address, so one pod spending a quota starved every other pod behind that bridge. With
 * `bridge run --openbao-forwarded-for` (and OpenBao's listener trusting the bridge: `x_forwarded_for_authorized_
 * addrs`, `x_forwarded_for_reject_not_present = false` for the bridge's own requests), the bridge passes the address
 * the broker's socket saw for each pod as X-Forwarded-For: each pod has its own bucket, and OpenBao's audit log names
 * the pod. What a pod writes in its own X-Forwarded-For is never what OpenBao sees.
 */
import { request as httpsRequest } from 'node:https';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OperationalStack, podClientToken, SECRET_PATH, startOperationalStack } from './stack.js';

/** Pod B's source address: the pod API listens on 127.0.0.1, pod A connects from there too. */
const POD_B_ADDRESS = '127.0.0.3';
const QUOTA = 3;

const stacks: OperationalStack[] = [];
afterAll(async () => {
  for (const stack of stacks) await stack.close();
});

async function stackWithQuota(forwardedFor: boolean): Promise<OperationalStack> {
  const stack = await startOperationalStack({
    logLevel: 'info',
    openbao: { forwardedFor: { authorizedAddrs: ['127.0.0.0/8'], rejectNotPresent: false } },
    bridge: { openbaoForwardedFor: forwardedFor },
  });
  stacks.push(stack);
  // QUOTA secret reads per minute and client address, in the cluster's namespace.
  await stack.admin.request('POST', 'sys/quotas/rate-limit/pod-reads', {
    body: { path: `${stack.cluster.namespace}/secret/`, rate: QUOTA, interval: '60s' },
  });
  return stack;
}

/** One secret read through the pod API, from pod A (127.0.0.1) or pod B (POD_B_ADDRESS). */
async function read(
  stack: OperationalStack,
  token: string,
  options: { from?: 'pod-b'; headers?: Record<string, string> } = {},
): Promise<number> {
  const path = `/v1/secret/data/${SECRET_PATH}`;
  const headers = { 'x-vault-token': token, ...options.headers };
  if (options.from !== 'pod-b') {
    const response = await request(`${stack.podApiUrl}${path}`, { dispatcher: stack.podAgent, headers });
    await response.body.dump();
    return response.statusCode;
  }
  // undici's connector has no source address; node:https does.
  return new Promise((resolve, reject) => {
    const url = new URL(`${stack.podApiUrl}${path}`);
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        headers,
        ca: stack.podApiCaPem,
        localAddress: POD_B_ADDRESS,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The client addresses OpenBao acted on for the cluster's secret reads, in order. */
function readAddresses(stack: OperationalStack): string[] {
  return stack.openbao
    .requestLog()
    .filter((entry) => entry.path === `/v1/secret/data/${SECRET_PATH}`)
    .map((entry) => entry.clientAddress);
}

describe('per-address OpenBao quotas through the pod API', () => {
  let shared: OperationalStack;
  let perPod: OperationalStack;
  beforeAll(async () => {
    shared = await stackWithQuota(false);
    perPod = await stackWithQuota(true);
  }, 90_000);

  it('by default: every pod counts as the bridge, so one pod spending the quota starves the others', async () => {
    const stack = shared;
    const token = await podClientToken(stack);
    for (let i = 0; i < QUOTA; i++) expect(await read(stack, token)).toBe(200);
    expect(await read(stack, token)).toBe(429);
    expect(await read(stack, token, { from: 'pod-b' })).toBe(429);
    expect(new Set(readAddresses(stack))).toEqual(new Set(['127.0.0.1']));
  });

  it("with --openbao-forwarded-for: each pod has its own bucket, and OpenBao sees the pod's address", async () => {
    const stack = perPod;
    const token = await podClientToken(stack);
    for (let i = 0; i < QUOTA; i++) expect(await read(stack, token)).toBe(200);
    expect(await read(stack, token)).toBe(429);
    expect(await read(stack, token, { from: 'pod-b' })).toBe(200);
    expect(readAddresses(stack)).toContain(POD_B_ADDRESS);
  });

  it('a pod cannot pick its own address: the X-Forwarded-For it sends is not what OpenBao sees', async () => {
    const stack = perPod;
    const token = await podClientToken(stack);
    // Pod B pretends to be a fresh address; OpenBao still counts it as 127.0.0.3, whose bucket is being spent.
    const statuses: number[] = [];
    for (let i = 0; i < QUOTA; i++)
      statuses.push(await read(stack, token, { from: 'pod-b', headers: { 'x-forwarded-for': '10.66.0.1' } }));
    expect(statuses).toContain(429);
    expect(readAddresses(stack)).not.toContain('10.66.0.1');
  });
});
