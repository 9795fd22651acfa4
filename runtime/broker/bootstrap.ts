/**
 * The broker's side of the init room: TLS server with a throw-away self-signed certificate, require the
 * bridge's client certificate and check it chains to the CA the bridge presents (and to the pin), send
 * {fingerprint, csr}, verify what comes back. Only public material leaves this process.
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { CloudtaserError } from '../core/errors.js';
import { sha256Hex } from '../core/hashes.js';
import type { Logger } from '../core/log.js';
import {
  certificateMatchesKey,
  createCsr,
  generateKeyPair,
  isIssuedBy,
  issueSelfSignedSync,
  type KeyPair,
} from '../pki/index.js';
import { acceptTls, INIT_ALPN, readBootstrapMessage, writeBootstrapMessage } from '../tunnel/index.js';

export interface BrokerCredentials {
  /** The cluster CA (public); its DER hash is the operational room. */
  readonly caCertPem: string;
  readonly caCertDer: Buffer;
  readonly brokerCertPem: string;
  /** In memory only; never written, logged or sent. */
  readonly privateKey: KeyObject;
  /** The pod API serving certificate (cluster CA), when `podApi` was asked for and the bridge signed it. */
  readonly podApiCertPem?: string;
  /** Its key; in memory only. */
  readonly podApiPrivateKey?: KeyObject;
}

export interface BrokerBootstrapOptions {
  readonly fingerprint: string;
  /** Optional pin: SHA-256 of the cluster CA DER, lower-case hex. */
  readonly caSha256?: string;
  /**
   * Where the pin comes from, for the refusal's advice: `flag` (--ca-sha256, the chart's caSha256, which wins over
   * the trust record, so `target trust pin` does not move it) or `record` (the trust record). @default 'record'
   */
  readonly caPinSource?: 'flag' | 'record';
  /** Bound for each step (handshake, answer). */
  readonly stepTimeoutMs: number;
  readonly signal?: AbortSignal;
  readonly logger: Logger;
  /** The key the CSR is for; kept across retries within one process. @default a fresh P-256 key */
  readonly keyPair?: KeyPair;
  /** Also ask for a pod API serving certificate for these DNS names (the operator Service's). */
  readonly podApi?: { readonly dnsNames: readonly string[]; readonly keyPair?: KeyPair };
  /**
   * Service-account token whose audiences bind `keyPair` (and the pod API key), sent with the CSR when the
   * registration requires attested bootstrap. Pass `keyPair` too, or the token cannot match.
   */
  readonly attestationToken?: string;
  /**
   * Runs once the bridge's chain has been verified (and matched the pin, if any) and before anything about this
   * cluster is sent. Without a pin the broker records the presented CA here, so a bootstrap the bridge spends is
   * never left without a record; a throw ends the exchange with nothing sent.
   */
  readonly beforeRequest?: (presentedCa: X509Certificate) => Promise<void>;
}

/**
 * The broker's CSRs (PEM): one for its tunnel key, one for its pod API key with the Service's names. The bootstrap
 * and every renewal ask with the same subjects, so the bridge sees the same request shape for the same keys.
 */
export function brokerCsrs(
  keyPair: KeyPair,
  podApi: { readonly dnsNames: readonly string[]; readonly keyPair: KeyPair } | undefined,
): { readonly csr: string; readonly podApiCsr?: string } {
  return {
    csr: createCsr({ commonName: 'cloudtaser-broker', keyPair }).csrPem,
    ...(podApi
      ? {
          podApiCsr: createCsr({
            commonName: podApi.dnsNames[0] ?? 'cloudtaser',
            dnsNames: podApi.dnsNames,
            keyPair: podApi.keyPair,
          }).csrPem,
        }
      : {}),
  };
}

/** Runs one bootstrap exchange over a paired beacon stream. Always closes the stream. */
export async function bootstrapBroker(
  stream: Duplex,
  options: BrokerBootstrapOptions,
): Promise<BrokerCredentials> {
  const keyPair = options.keyPair ?? generateKeyPair();
  const podApiKeyPair = options.podApi ? (options.podApi.keyPair ?? generateKeyPair()) : undefined;
  const { csr, podApiCsr } = brokerCsrs(
    keyPair,
    options.podApi && podApiKeyPair
      ? { dnsNames: options.podApi.dnsNames, keyPair: podApiKeyPair }
      : undefined,
  );
  // A certificate nobody needs to trust: it only gives the init exchange TLS; its key dies with this call.
  const ephemeral = issueSelfSignedSync({
    commonName: 'cloudtaser-broker-init',
    days: 1,
    extKeyUsage: ['serverAuth'],
  });
  const socket = await acceptTls(
    stream,
    {
      cert: ephemeral.certPem,
      key: ephemeral.keyPem,
      requestCert: true,
      rejectUnauthorized: false, // we verify the bridge against the CA it presents, below
      ALPNProtocols: [INIT_ALPN],
    },
    {
      timeoutMs: options.stepTimeoutMs,
      code: 'CT_BOOTSTRAP_PROTOCOL',
      what: 'the init TLS handshake with the bridge',
      signal: options.signal,
    },
  );
  try {
    const presentedCa = verifyBridgeChain(socket, options.caSha256, options.caPinSource);
    await options.beforeRequest?.(presentedCa);
    writeBootstrapMessage(socket, {
      v: 1,
      type: 'bootstrap.request',
      fingerprint: options.fingerprint,
      csr,
      ...(podApiCsr ? { podApiCsr } : {}),
      ...(options.attestationToken !== undefined ? { attestation: options.attestationToken } : {}),
    });
    const answer = await readBootstrapMessage(socket, {
      timeoutMs: options.stepTimeoutMs,
      signal: options.signal,
      expect: ['bootstrap.accepted', 'bootstrap.refused'],
    });
    if (answer.type === 'bootstrap.refused') {
      throw new CloudtaserError(
        'CT_BOOTSTRAP_REFUSED',
        `the bridge refused the bootstrap: ${answer.reason}`,
        {
          details: { refusal: answer.code },
        },
      );
    }
    if (answer.type !== 'bootstrap.accepted')
      throw new CloudtaserError('CT_INTERNAL', 'unexpected bootstrap message');
    const ca = parseCertificate(answer.caCert, 'CA certificate');
    if (!ca.raw.equals(presentedCa.raw)) {
      throw new CloudtaserError(
        'CT_PKI_INVALID_CERT',
        'the CA certificate the bridge sent differs from the CA it presented in TLS; refusing it',
      );
    }
    checkPin(ca, options.caSha256, options.caPinSource);
    const brokerCert = parseCertificate(answer.brokerCert, 'broker certificate');
    if (!certificateMatchesKey(brokerCert, keyPair.privateKey)) {
      throw new CloudtaserError(
        'CT_PKI_INVALID_CERT',
        'the broker certificate the bridge sent is not for our key; refusing it',
      );
    }
    if (!isIssuedBy(brokerCert, ca)) {
      throw new CloudtaserError(
        'CT_PKI_INVALID_CERT',
        'the broker certificate is not issued by the cluster CA (or is outside its validity); refusing it',
      );
    }
    let podApiCertPem: string | undefined;
    if (podApiKeyPair && answer.podApiCert !== undefined) {
      const podApiCert = parseCertificate(answer.podApiCert, 'pod API certificate');
      if (!certificateMatchesKey(podApiCert, podApiKeyPair.privateKey) || !isIssuedBy(podApiCert, ca)) {
        throw new CloudtaserError(
          'CT_PKI_INVALID_CERT',
          'the pod API certificate the bridge sent is not for our key or not issued by the cluster CA; refusing it',
        );
      }
      podApiCertPem = podApiCert.toString();
    }
    options.logger.info(
      { event: 'broker.bootstrap_accepted', operationalHashPrefix: sha256Hex(ca.raw).slice(0, 12) },
      'bootstrap accepted',
    );
    return {
      caCertPem: ca.toString(),
      caCertDer: ca.raw,
      brokerCertPem: brokerCert.toString(),
      privateKey: keyPair.privateKey,
      ...(podApiCertPem && podApiKeyPair
        ? { podApiCertPem, podApiPrivateKey: podApiKeyPair.privateKey }
        : {}),
    };
  } finally {
    socket.end();
    setTimeout(() => socket.destroy(), 500).unref();
  }
}

/** The bridge must send [its client cert, the cluster CA]; the leaf must be issued by that self-signed CA. */
function verifyBridgeChain(
  socket: TLSSocket,
  pin: string | undefined,
  pinSource?: 'flag' | 'record',
): X509Certificate {
  const leafDetail = socket.getPeerCertificate(true);
  if (!leafDetail?.raw)
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      'the bridge presented no client certificate in the init TLS',
    );
  const issuerDetail = leafDetail.issuerCertificate;
  if (!issuerDetail?.raw || issuerDetail.raw.equals(leafDetail.raw)) {
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      'the bridge presented no CA certificate with its client certificate',
    );
  }
  const leaf = new X509Certificate(leafDetail.raw);
  const ca = new X509Certificate(issuerDetail.raw);
  if (!ca.ca || !ca.checkIssued(ca) || !ca.verify(ca.publicKey)) {
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      'the CA the bridge presented is not a self-signed CA certificate',
    );
  }
  checkPin(ca, pin, pinSource);
  if (!isIssuedBy(leaf, ca))
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      'the bridge client certificate is not issued by the CA it presented',
    );
  // The cluster CA also signs broker and pod API certificates (serverAuth): only a bridge's client certificate
  // may play the bridge, as the operational room's TLS (purpose check) already demands.
  if (!leaf.keyUsage?.includes(CLIENT_AUTH_OID))
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      'the certificate the bridge presented is not a client certificate (no clientAuth extended key usage); refusing it',
    );
  return ca;
}

/** id-kp-clientAuth (RFC 5280 4.2.1.12). */
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

function checkPin(ca: X509Certificate, pin: string | undefined, source: 'flag' | 'record' = 'record'): void {
  if (pin === undefined) return;
  const actual = sha256Hex(ca.raw);
  if (actual !== pin) {
    // Which pin is in force decides the fix: an outside drill ran `target trust pin` as told while the flag's pin,
    // which wins over the record, stayed, and the broker repeated the same advice.
    const fix =
      source === 'flag'
        ? 'The pin in force is --ca-sha256 (chart operator.broker.trust.caSha256), which wins over the trust record: if the cluster was registered again on purpose (a new CA), set the new operational hash there (`cloudtaser-cli source status` prints it; helm upgrade --set operator.broker.trust.caSha256=<hash>, or cdktf deploy); `target trust pin` alone does not change this pin'
        : 'The pin in force is the trust record (`cloudtaser-cli target trust show`): if the cluster was registered again on purpose (a new CA), pin the new one: `cloudtaser-cli target trust pin --ca-sha256 <the operational hash `cloudtaser-cli source status` prints>`';
    throw new CloudtaserError(
      'CT_PKI_CA_PIN_MISMATCH',
      `the cluster CA offered has SHA-256 ${actual.slice(0, 12)}..., not the pinned ${pin.slice(0, 12)}... ${fix}; if it was not registered again, a bridge with another CA answers in this cluster's room and stays refused`,
    );
  }
}

function parseCertificate(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new CloudtaserError(
      'CT_PKI_INVALID_CERT',
      `the ${what} the bridge sent is not a readable certificate`,
      { cause: err },
    );
  }
}
