/**
 * Durations from settings that reach timers: `--step-timeout` (every handshake and bootstrap step) and a TLS file
 * reload interval (beacon `--tls-reload-interval`). Beyond 2^31-1 ms a Node timer fires after 1 ms: every
 * handshake failed at once, and the files were re-read every millisecond. Such delays are capped now.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { watchPemFiles } from '../../runtime/core/tls-files.js';
import { readRelayClientFlags } from '../../runtime/tunnel/flags.js';
import { awaitSecure } from '../../runtime/tunnel/tls.js';

const OVER_TIMER = 2 ** 31; // 24.8 days + 1 ms
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('timer caps (settings beyond 24.8 days)', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('--step-timeout 1000h parses, and a handshake step with it does not fail after 1 ms', async () => {
    // The CLI takes it (no refusal like the beacon and tunnel limits get) ...
    const flags = await readRelayClientFlags(
      { beacon: ['127.0.0.1:1'], stepTimeout: '1000h', backoffMax: '5s', shutdownDelay: '0s' } as never,
      'bridge run',
    );
    expect(flags.stepTimeoutMs).toBe(3_600_000_000);
    // ... and uses it as a timer: a TLS handshake to a silent peer must still be waiting after 300 ms.
    server = createServer(() => {}); // accepts, never answers the ClientHello
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    socket.on('error', () => {});
    const outcome = await Promise.race([
      awaitSecure(socket, {
        timeoutMs: flags.stepTimeoutMs,
        code: 'CT_TUNNEL_PROTOCOL',
        what: 'handshake',
      }).then(
        () => 'secure',
        (err: Error) => `failed: ${err.message}`,
      ),
      sleep(300).then(() => 'still waiting'),
    ]);
    socket.destroy();
    expect(outcome).toBe('still waiting');
  });

  it('a TLS file reload interval beyond 24.8 days (beacon --tls-reload-interval) does not re-read every 1 ms', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ct-docsnow-'));
    const file = join(dir, 'a.pem');
    writeFileSync(file, 'one');
    const changes: string[] = [];
    const watched = await watchPemFiles({
      files: [file],
      what: 'test file',
      load: ([text]) => text,
      onChange: (value) => changes.push(value),
      intervalMs: OVER_TIMER,
    });
    writeFileSync(file, 'two');
    await sleep(300);
    watched.close();
    // Expected: the next look is 24.8 days away, so nothing is seen yet.
    expect(changes).toEqual([]);
  });
});
