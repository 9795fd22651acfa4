/**
 * The operational tunnel against a peer of another version (a rolling upgrade): same TLS and framing, but its own
 * answer to GET /v1/tunnel/info, the one place the tunnel announces its protocol.
 */
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../runtime/core/index.js';
import { createCertificateAuthority, issueCertificate } from '../../runtime/pki/index.js';
import {
  acceptTls,
  acceptTunnel,
  createTunnelMux,
  openTunnel,
  TUNNEL_ALPN,
  TUNNEL_INFO_PATH,
  type TunnelHandler,
} from '../../runtime/tunnel/index.js';
import { expectCode } from '../support/expect-code.js';
import { duplexPair } from './duplex-pair.js';

const ca = createCertificateAuthority({ commonName: 'cluster ca' });
const broker = issueCertificate(ca, { commonName: 'cloudtaser-broker', extKeyUsage: ['serverAuth'] });
const bridge = issueCertificate(ca, { commonName: 'cloudtaser-bridge', extKeyUsage: ['clientAuth'] });

const sessionOptions = (cert: typeof broker) => ({
  caCertPem: ca.certPem,
  certPem: cert.certPem,
  keyPem: cert.keyPem!,
  handshakeTimeoutMs: 3_000,
  logger: silentLogger,
});

/** Answers the info path with `info`, as a peer of another version would. */
const answering =
  (info: Record<string, unknown>): TunnelHandler =>
  (request) =>
    request.path === TUNNEL_INFO_PATH
      ? { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(info) }
      : { status: 404 };

/** This version's broker against a bridge that answers `info`. */
function brokerMeets(info: Record<string, unknown>) {
  const [brokerSide, bridgeSide] = duplexPair();
  const accepted = acceptTunnel(brokerSide, sessionOptions(broker));
  const socket = tlsConnect({
    socket: bridgeSide,
    cert: bridge.certPem,
    key: bridge.keyPem!,
    ca: [ca.certPem],
    ALPNProtocols: [TUNNEL_ALPN],
    checkServerIdentity: () => undefined,
  });
  socket.on('error', () => {});
  const peer = createTunnelMux(socket, {
    side: 'initiator',
    limits: { pingIntervalMs: 0 },
    handler: answering(info),
  });
  socket.once('secureConnect', () => {
    void peer.request({ method: 'GET', path: TUNNEL_INFO_PATH }).catch(() => undefined);
  });
  return { accepted, peer };
}

/** This version's bridge against a broker that answers `info`. */
function bridgeMeets(info: Record<string, unknown>) {
  const [brokerSide, bridgeSide] = duplexPair();
  const opened = openTunnel(bridgeSide, sessionOptions(bridge));
  const peer = acceptTls(
    brokerSide,
    {
      cert: broker.certPem,
      key: broker.keyPem!,
      ca: [ca.certPem],
      requestCert: true,
      ALPNProtocols: [TUNNEL_ALPN],
    },
    { timeoutMs: 3_000, code: 'CT_TUNNEL_CLOSED', what: 'test broker handshake' },
  ).then((socket) => {
    const mux = createTunnelMux(socket, {
      side: 'acceptor',
      limits: { pingIntervalMs: 0 },
      handler: answering(info),
    });
    void mux.request({ method: 'GET', path: TUNNEL_INFO_PATH }).catch(() => undefined);
    return mux;
  });
  return { opened, peer };
}

const since = new Date().toISOString();

describe('tunnel info from a peer of another version', () => {
  it('accepts a later bridge that only adds fields to its info answer', async () => {
    const { accepted, peer } = brokerMeets({
      role: 'bridge',
      protocol: 1,
      since,
      capabilities: ['window-update'],
    });
    const session = await accepted;
    expect(session.peerInfo).toMatchObject({ role: 'bridge', protocol: 1 });
    session.mux.close();
    peer.close();
  });

  it('a broker refuses a bridge of tunnel protocol 2 with CT_TUNNEL_PROTOCOL naming both versions and saying to upgrade the broker', async () => {
    const { accepted, peer } = brokerMeets({ role: 'bridge', protocol: 2, since });
    const err = await expectCode(accepted, 'CT_TUNNEL_PROTOCOL');
    peer.close();
    expect(err.message).toBe('the bridge speaks tunnel protocol 2, this broker speaks 1: upgrade the broker');
  });

  it('a bridge refuses a broker of tunnel protocol 2 with CT_TUNNEL_PROTOCOL saying to upgrade the bridge', async () => {
    const { opened, peer } = bridgeMeets({ role: 'broker', protocol: 2, since });
    const err = await expectCode(opened, 'CT_TUNNEL_PROTOCOL');
    (await peer).close();
    expect(err.message).toBe('the broker speaks tunnel protocol 2, this bridge speaks 1: upgrade the bridge');
  });

  it('still refuses an info answer without a protocol as unusable', async () => {
    const { accepted, peer } = brokerMeets({ role: 'bridge', since });
    const err = await expectCode(accepted, 'CT_TUNNEL_PROTOCOL');
    peer.close();
    expect(err.message).toMatch(/unusable body/);
  });
});
