/**
 * `cloudtaser_beacon_client_ca`: the bridges' identity towards the beacon. Create makes the CA once in OpenBao
 * (check-and-set; an existing one is adopted), and state holds only its certificate (public) and hash: the
 * private key never leaves OpenBao, where each bridge reads it to mint its own short-lived client certificate.
 * Give `ca_cert_pem` to the beacon (`beacon serve --bridge-ca`, the beacon chart's `bridgeAuth.caPems`).
 */
import { CloudtaserError } from '../../runtime/core/errors.js';
import { defineResource } from '../framework/provider.js';
import { loadSecretStoreDomain } from '../load-domain.js';
import { attr } from '../schema/schema.js';
import type { CloudtaserProviderClient } from './provider-config.js';

export const beaconClientCaBlock = {
  description:
    'The beacon client CA: bridges mint their client certificates from it (its key stays in OpenBao, under the ' +
    "provider's `namespace_root`), and the beacon admits as bridges only clients with such a certificate. " +
    'Created once; an existing CA is adopted. Destroying the resource leaves the CA in OpenBao, so running ' +
    'bridges and beacons keep working; to rotate it, see the beacon client CA section of the threat model.',
  attributes: {
    id: attr.string({ description: 'Same as `ca_sha256`.', computed: true }),
    ca_cert_pem: attr.string({
      description:
        'The CA certificate (PEM, public): what the beacon trusts (`beacon serve --bridge-ca`, chart value `beacon.bridgeAuth.caPems`).',
      computed: true,
    }),
    ca_sha256: attr.string({ description: "SHA-256 of the CA certificate's DER (hex).", computed: true }),
  },
};

export const beaconClientCaResource = defineResource<CloudtaserProviderClient>()({
  typeName: 'cloudtaser_beacon_client_ca',
  schema: { version: 0, block: beaconClientCaBlock },

  async create({ planned, client, signal }) {
    signal.throwIfAborted();
    const { ensureBeaconClientCa } = (await loadSecretStoreDomain()).registration;
    const ca = await ensureBeaconClientCa(await client.openBao(), { namespaceRoot: client.namespaceRoot });
    return { ...planned, id: ca.sha256, ca_cert_pem: ca.certPem, ca_sha256: ca.sha256 };
  },

  async update({ prior }) {
    return prior;
  },

  async read({ state, client, signal, warn }) {
    signal.throwIfAborted();
    if (client.secretStoreUnknown.length > 0) {
      // As the registration does: a plan whose provider arguments are known only at apply keeps the stored CA
      // (it failed the whole plan with CT_PROVIDER_CONFIG_UNKNOWN); an import, which has nothing stored, needs them.
      if (typeof state.ca_sha256 !== 'string') {
        const problem = client.secretStoreProblem()!;
        throw new CloudtaserError(problem.code, `importing the beacon client CA: ${problem.message}`);
      }
      warn({
        summary: 'Beacon client CA not refreshed: provider configuration not known yet',
        detail:
          `The cloudtaser provider arguments ${client.secretStoreUnknown.join(', ')} depend on values Terraform only ` +
          'knows during apply, so this plan shows the beacon client CA as stored in the state. Run plan again after ' +
          'apply to compare with OpenBao.',
      });
      return state;
    }
    const { readBeaconClientCaCertificate } = (await loadSecretStoreDomain()).registration;
    const ca = await readBeaconClientCaCertificate(await client.openBao(), {
      namespaceRoot: client.namespaceRoot,
    });
    // Gone from OpenBao: Terraform plans to create it again.
    if (!ca) return null;
    return { ...state, id: ca.sha256, ca_cert_pem: ca.certPem, ca_sha256: ca.sha256 };
  },

  async delete() {
    // Deliberately nothing: deleting the CA would lock every bridge out of every beacon at its next renewal.
  },

  async importState({ id }) {
    // Any id: there is one CA per namespace root; read fills in the rest.
    return { id };
  },
});
