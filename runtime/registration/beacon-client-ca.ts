/**
 * The beacon client CA: the bridges' identity towards the beacon. It lives in OpenBao (root namespace, records
 * mount, `system/beacon-client-ca`), is created once with check-and-set, and only its certificate (public) ever
 * leaves OpenBao: the beacon trusts it (`beacon serve --bridge-ca`), Terraform state and `cdktf.out` hold it.
 * Each bridge reads the private key at start and mints its own short-lived client certificate in memory.
 */
import { X509Certificate } from 'node:crypto';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';
import { sha256Hex } from '../core/hashes.js';
import type { OpenBaoClient } from '../openbao/index.js';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  LIFETIME_DAYS,
  loadCertificateAuthority,
} from '../pki/index.js';
import { asLostCreateRace } from './create-once.js';
import {
  asCertificateRecord,
  type BridgeCaRecord,
  DEFAULT_NAMESPACE_ROOT,
  paths,
  RECORDS_MOUNT,
  validateNamespaceRoot,
} from './layout.js';

export interface BeaconClientCa {
  /** The CA certificate (PEM, public): what the beacon is configured with. */
  readonly certPem: string;
  /** SHA-256 of its DER, hex. */
  readonly sha256: string;
  /** True when this call created it. */
  readonly created: boolean;
}

/**
 * Creates the beacon client CA unless it exists (idempotent; concurrent callers agree on one) and returns its
 * certificate. The client must be allowed to create the root namespace and its records mount when they are
 * missing, as `registerCluster` does. Used by `cloudtaser-cli source beacon-ca`, the provider and the dev stack.
 */
export async function ensureBeaconClientCa(
  client: OpenBaoClient,
  options: { namespaceRoot?: string } = {},
): Promise<BeaconClientCa> {
  const namespaceRoot = validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  await client.createNamespace(namespaceRoot);
  const root = client.withNamespace(namespaceRoot);
  await root.enableKvV2(RECORDS_MOUNT);
  const existing = await readRecord(root);
  if (existing) return describe(existing.certificate, false);
  const ca = createCertificateAuthority({
    commonName: 'cloudtaser beacon client CA',
    days: LIFETIME_DAYS.ca,
  });
  const record: BridgeCaRecord = { certificate: ca.certPem, private_key: ca.keyPem };
  try {
    await root.kvWrite(RECORDS_MOUNT, paths.beaconClientCa, { ...record }, { cas: 0 });
  } catch (thrown) {
    // Another caller created it in the same moment: theirs is the one.
    const err = await asLostCreateRace(thrown, async () => (await readRecord(root)) !== undefined);
    if (!isCloudtaserError(err, 'CT_OPENBAO_CAS_MISMATCH')) throw err;
    const winner = await readRecord(root);
    if (!winner) throw beaconClientCaDeleted(namespaceRoot, err);
    return describe(winner.certificate, false);
  }
  return describe(ca.certPem, true);
}

/**
 * A soft-deleted record (`bao kv delete`) reads as absent but keeps its version, so check-and-set 0 cannot create it
 * again. Unlike the TokenReview listener CA it is not replaced: every beacon admits bridges by this CA (--bridge-ca),
 * so a new one would lock every bridge out until each beacon was given it.
 */
function beaconClientCaDeleted(namespaceRoot: string, cause: unknown): CloudtaserError {
  return new CloudtaserError(
    'CT_OPENBAO_CAS_MISMATCH',
    `the beacon client CA at ${namespaceRoot}/${RECORDS_MOUNT}/${paths.beaconClientCa} was deleted (a deleted record keeps its version, so it is not created again): restore it with \`bao kv undelete -namespace=${namespaceRoot} -mount=${RECORDS_MOUNT} -versions=<latest> ${paths.beaconClientCa}\`; a new CA would lock every bridge out of the beacons until each is given it (--bridge-ca)`,
    { cause },
  );
}

/** The beacon client CA's certificate without creating anything; undefined when it does not exist yet. */
export async function readBeaconClientCaCertificate(
  client: OpenBaoClient,
  options: { namespaceRoot?: string } = {},
): Promise<Omit<BeaconClientCa, 'created'> | undefined> {
  const root = client.withNamespace(validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT));
  const record = await readRecord(root).catch((err) => {
    if (
      isCloudtaserError(err, 'CT_OPENBAO_NAMESPACE_NOT_FOUND') ||
      isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')
    )
      return undefined;
    throw err;
  });
  if (!record) return undefined;
  const { created: _created, ...view } = describe(record.certificate, false);
  return view;
}

/**
 * The CA with its private key, for the bridge to mint its own beacon client certificate. Throws CT_BEACON_IDENTITY
 * saying what to run when it was never created.
 */
export async function loadBeaconClientCa(
  client: OpenBaoClient,
  options: { namespaceRoot?: string } = {},
): Promise<CertificateAuthority> {
  const namespaceRoot = validateNamespaceRoot(options.namespaceRoot ?? DEFAULT_NAMESPACE_ROOT);
  let record: BridgeCaRecord | undefined;
  try {
    record = await readRecord(client.withNamespace(namespaceRoot));
  } catch (err) {
    if (
      !isCloudtaserError(err, 'CT_OPENBAO_NAMESPACE_NOT_FOUND') &&
      !isCloudtaserError(err, 'CT_OPENBAO_NOT_FOUND')
    )
      throw err;
  }
  if (!record) {
    throw new CloudtaserError(
      'CT_BEACON_IDENTITY',
      `OpenBao has no beacon client CA at ${namespaceRoot}/${RECORDS_MOUNT}/${paths.beaconClientCa}; create it with \`cloudtaser-cli source beacon-ca\` (or the cloudtaser_beacon_client_ca resource) and give its certificate to the beacon (--bridge-ca)`,
    );
  }
  return loadCertificateAuthority(record.certificate, record.private_key);
}

async function readRecord(root: OpenBaoClient): Promise<BridgeCaRecord | undefined> {
  const stored = await root.kvRead(RECORDS_MOUNT, paths.beaconClientCa);
  return asCertificateRecord<BridgeCaRecord>(stored?.data, 'beacon client CA');
}

function describe(certPem: string, created: boolean): BeaconClientCa {
  const ca = new X509Certificate(certPem);
  return { certPem: ca.toString(), sha256: sha256Hex(ca.raw), created };
}
