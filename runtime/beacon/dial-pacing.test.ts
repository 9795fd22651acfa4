import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { createDialAdmission, withPriority } from './admission.js';
import { createReplicaCircuit } from './replica-circuit.js';
import { waitForPeer } from './replica-dial.js';

describe('dial admission', () => {
  it('lets at most maxOpening dials open at once and hands a released slot to the next in line', async () => {
    const admission = createDialAdmission(2);
    const a = await admission.acquire();
    const b = await admission.acquire();
    const order: string[] = [];
    const c = admission.acquire().then((release) => {
      order.push('c');
      return release;
    });
    const d = admission.acquire().then((release) => {
      order.push('d');
      return release;
    });
    expect(admission.opening).toBe(2);
    expect(admission.queued).toBe(2);
    a();
    a(); // a second release of the same slot changes nothing
    const releaseC = await c;
    expect(order).toEqual(['c']);
    expect(admission.opening).toBe(2);
    b();
    (await d)();
    releaseC();
    expect(admission.opening).toBe(0);
    expect(order).toEqual(['c', 'd']);
  });

  it('drops a queued dial whose signal aborts, with CT_CANCELLED, and keeps the slot count right', async () => {
    const admission = createDialAdmission(1);
    const first = await admission.acquire();
    const abort = new AbortController();
    const queued = admission.acquire(abort.signal);
    abort.abort();
    await expect(queued).rejects.toMatchObject({ code: 'CT_CANCELLED' });
    expect(admission.queued).toBe(0);
    first();
    expect(admission.opening).toBe(0);
  });

  it('opens queued dials by priority, in arrival order within one priority (operational rooms before init rooms)', async () => {
    const admission = createDialAdmission(1);
    const operational = withPriority(admission, 0);
    const init = withPriority(admission, 1);
    const first = await init.acquire();
    const order: string[] = [];
    const take = (which: typeof admission, name: string) =>
      which.acquire().then((release) => {
        order.push(name);
        return release;
      });
    const queued = {
      'init-1': take(init, 'init-1'),
      'init-2': take(init, 'init-2'),
      'op-1': take(operational, 'op-1'),
      'op-2': take(operational, 'op-2'),
    };
    expect(admission.queued).toBe(4);
    expect(admission.opening).toBe(1);
    // One slot: each release hands it to the next in line; follow the chain.
    let release = first;
    for (const name of ['op-1', 'op-2', 'init-1', 'init-2'] as const) {
      release();
      release = await queued[name];
      expect(order.at(-1)).toBe(name);
      expect(admission.opening).toBe(1);
    }
    release();
    expect(admission.opening).toBe(0);
    expect(order).toEqual(['op-1', 'op-2', 'init-1', 'init-2']);
  });

  it('refuses a bound below one', () => {
    expect(() => createDialAdmission(0)).toThrow(expect.objectContaining({ code: 'CT_INVALID_ARGUMENT' }));
  });
});

describe('replica circuit', () => {
  const fast = { initialMs: 1, maxMs: 2 };

  it('lets every dial through while the replica is reachable', async () => {
    const circuit = createReplicaCircuit(fast);
    const signal = new AbortController().signal;
    const passes = await Promise.all([1, 2, 3].map(() => circuit.beforeDial(signal)));
    expect(passes.map((pass) => pass.probe)).toEqual([false, false, false]);
    for (const pass of passes) pass.done();
  });

  it('sends one probe at a time to an unreachable replica and releases everyone when a probe gets through', async () => {
    const circuit = createReplicaCircuit(fast);
    const signal = new AbortController().signal;
    const failing = await circuit.beforeDial(signal);
    failing.unreachable();
    failing.done();
    expect(circuit.state).toBe('unreachable');
    // Ten waiters come back at once: one probes, nine wait for its outcome.
    const passes = [...Array(10)].map(() => circuit.beforeDial(signal));
    const probe = await Promise.race(passes);
    expect(probe.probe).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(circuit.waiting).toBe(9);
    // The probe fails: still one prober, the others keep waiting.
    probe.unreachable();
    probe.done();
    const again = await circuit.beforeDial(signal);
    expect(again.probe).toBe(true);
    expect(circuit.waiting).toBe(9);
    again.reached();
    again.done();
    const released = await Promise.all(passes);
    expect(circuit.state).toBe('reachable');
    // The first probe, and nine released by the second probe getting through.
    expect(released.filter((pass) => pass.probe)).toHaveLength(1);
    for (const pass of released) pass.done();
  });

  it('hands the probe to a waiting caller when the prober is cancelled', async () => {
    const circuit = createReplicaCircuit(fast);
    const first = await circuit.beforeDial(new AbortController().signal);
    first.unreachable();
    first.done();
    const cancelled = new AbortController();
    const prober = await circuit.beforeDial(cancelled.signal);
    expect(prober.probe).toBe(true);
    const waiter = circuit.beforeDial(new AbortController().signal);
    await new Promise((resolve) => setImmediate(resolve));
    expect(circuit.waiting).toBe(1);
    cancelled.abort();
    prober.done();
    expect((await waiter).probe).toBe(true);
  });
});

describe('a dial the admission lets through as it is cancelled', () => {
  it('never opens a connection: aborting a queue of dials leaves no socket behind (a bridge stopping with a storm in flight exited only when killed)', async () => {
    // A "beacon" that accepts TCP and never answers: every dial stays in its opening phase until cancelled.
    const sockets = new Set<Socket>();
    let accepted = 0;
    const server = createServer((socket) => {
      accepted++;
      sockets.add(socket);
      socket.on('error', () => {});
      socket.resume(); // read, so the client's close is seen
      socket.on('close', () => sockets.delete(socket));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const admission = createDialAdmission(1);
    const dial = (signal: AbortSignal) =>
      waitForPeer({
        target: { door: 'tls', host: '127.0.0.1', port },
        ip: '127.0.0.1',
        role: 'bridge',
        hash: 'a'.repeat(64),
        admission,
        signal,
        connectTimeoutMs: 60_000,
      }).catch((err: { code: string }) => err.code);
    try {
      const stop = new AbortController();
      const first = dial(stop.signal);
      await vi.waitFor(() => expect(accepted).toBe(1));
      // Queued after the first dial listens for the abort, so the abort reaches the first dial before them.
      const queued = [dial(stop.signal), dial(stop.signal)];
      // The first dial's failure releases its slot to the next in line in the same cascade that cancels it.
      stop.abort();
      expect(await Promise.all([first, ...queued])).toEqual(['CT_CANCELLED', 'CT_CANCELLED', 'CT_CANCELLED']);
      // Proof that nothing else is on its way: a later dial is the second connection the server ever sees.
      const later = new AbortController();
      const third = dial(later.signal);
      await vi.waitFor(() => expect(accepted).toBe(2));
      later.abort();
      expect(await third).toBe('CT_CANCELLED');
      await vi.waitFor(() => expect(sockets.size).toBe(0));
      expect(admission.opening).toBe(0);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});
