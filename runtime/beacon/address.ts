/** Beacon addresses as users write them (the Helm value, --beacon): which door, which name, which port. */
import { CloudtaserError } from '../core/index.js';
import { type BeaconDoor, WEBSOCKET_PATH } from './protocol.js';

/** Where and how to reach a beacon: which door, which name (for TLS verification), which port. */
export interface BeaconTarget {
  readonly door: BeaconDoor;
  readonly host: string;
  readonly port: number;
  /** WebSocket path; only for the `wss` door. @default '/v1/relay' */
  readonly path?: string;
}

/** Every door shares the beacon's one listening port. */
const DEFAULT_PORT = 443;

/**
 * Parses a beacon address as users write it in the Helm value:
 * `host:port` (TLS door, raw framing), `tls://host:port`, `wss://host:port[/path]`, `plain://host:port`.
 * The port defaults to 443 for every door, because all doors share one listening port.
 */
export function parseBeaconAddress(
  address: string,
  options: {
    /** Names the address in the error: the flag or value it came from. @default 'beacon address' */
    readonly what?: string;
  } = {},
): BeaconTarget {
  const text = typeof address === 'string' ? address.trim() : '';
  const invalid = (why: string) =>
    new CloudtaserError(
      'CT_INVALID_ARGUMENT',
      `${options.what ?? 'beacon address'} ${JSON.stringify(String(address).slice(0, 200))} is invalid: ${why}; use host:port, wss://host:port[/path] or plain://host:port`,
    );
  if (text === '') throw invalid('it is empty');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  const door: BeaconDoor | undefined =
    scheme === undefined || scheme === 'tls'
      ? 'tls'
      : scheme === 'wss'
        ? 'wss'
        : scheme === 'plain'
          ? 'plain'
          : undefined;
  if (!door) throw invalid(`scheme '${scheme}' is not tls, wss or plain`);
  let url: URL;
  try {
    // Bare `host:port` is the TLS door; an explicit scheme of our own makes URL parse the authority for us.
    url = new URL(
      scheme === undefined
        ? `tls://${text}`
        : door === 'wss'
          ? text
          : `tls://${text.slice(scheme!.length + 3)}`,
    );
  } catch {
    throw invalid('it does not parse as host:port');
  }
  if (url.username || url.password) throw invalid('it must not carry credentials');
  if (url.search || url.hash) throw invalid('it must not carry a query or fragment');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw invalid('the host is missing');
  const port = url.port === '' ? DEFAULT_PORT : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw invalid('the port is out of range');
  if (door !== 'wss') {
    if (url.pathname !== '' && url.pathname !== '/') throw invalid(`a path is only allowed for wss://`);
    return { door, host, port };
  }
  const path = url.pathname === '' || url.pathname === '/' ? WEBSOCKET_PATH : url.pathname;
  return { door, host, port, path };
}
