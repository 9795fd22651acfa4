/**
 * Moving a tunnel, make before break. The bridge asks (`POST /v1/tunnel/move`) when a tunnel has to go: the beacon
 * replica it runs through drains, the bridge replica closes, or its shard moves to another bridge replica. A broker
 * that takes it answers 202, dials its next tunnel while this one keeps serving, and
 * closes this one itself once the next is up, so a redial that fails (the other replica gone as well, the network
 * to it cut) costs the pods nothing. A broker before 0.2.0 answers 404 (it knows no such path): the bridge then
 * closes the tunnel the moment nothing is in flight on it (GOAWAY CT_TUNNEL_DRAINED), and the broker dials again
 * (break before make, as before).
 */
import type { TunnelMux } from './mux.js';

export const TUNNEL_MOVE_PATH = '/v1/tunnel/move';

export function isTunnelMoveRequest(request: { readonly method: string; readonly path: string }): boolean {
  return request.method === 'POST' && request.path === TUNNEL_MOVE_PATH;
}

export type MoveOutcome = 'moving' | 'closed-when-idle' | 'gone';

/**
 * Asks the broker at the other end of `tunnel` to move. Any answer but 202, or none within `timeoutMs`, closes the
 * tunnel once idle instead (within `closeWithinMs`, then at once). Resolves with what happened: `moving` (the
 * broker took it and closes this tunnel itself), `closed-when-idle`, or `gone` (the tunnel closed meanwhile).
 */
export async function askToMove(
  tunnel: TunnelMux,
  options: { readonly timeoutMs: number; readonly closeWithinMs: number; readonly reason: string },
): Promise<MoveOutcome> {
  try {
    const answer = await tunnel.request({ method: 'POST', path: TUNNEL_MOVE_PATH }, undefined, {
      timeoutMs: options.timeoutMs,
    });
    if (answer.status === 202) return 'moving';
  } catch {
    // No answer in time, or the tunnel closed: handled below.
  }
  if (tunnel.closed) return 'gone';
  await tunnel.closeWhenIdle(options.reason, options.closeWithinMs);
  return 'closed-when-idle';
}
