/**
 * `BridgeIdentity`: the bridges' identity towards the beacon, as infrastructure. It makes the beacon client CA in
 * OpenBao once (the `cloudtaser_beacon_client_ca` resource; its key never leaves OpenBao, only the certificate
 * reaches state and `cdktf.out`). Bridges mint their client certificates from it; a `Beacon` admits them with
 * `beacon.admitBridges(identity)`.
 */
import { BeaconClientCa } from './bindings/index.js';
import { Construct } from './cdktf.js';
import type { SecretStoreProps } from './registered-cluster.js';
import { secretStoreProvider } from './secret-store-provider.js';
import { ConstructRefusal, refuseProp, requireHttpUrl, validateAt } from './validation.js';

export interface BridgeIdentityProps {
  /** The OpenBao the bridges serve (as Terraform reaches it). */
  readonly secretStore: SecretStoreProps;
}

export class BridgeIdentity extends Construct {
  /** The `cloudtaser_beacon_client_ca` resource (child id 'Resource'). */
  public readonly resource: BeaconClientCa;
  /** The beacon client CA certificate (PEM, public): what the beacon trusts. */
  public readonly caCertPem: string;
  /** SHA-256 of its DER (hex). */
  public readonly caSha256: string;

  public constructor(scope: Construct, id: string, props: BridgeIdentityProps) {
    super(scope, id);
    const secretStore = props.secretStore as SecretStoreProps & { token?: unknown };
    validateAt(this, () => {
      if (secretStore === undefined) throw new ConstructRefusal("'secretStore' is required");
      refuseProp(
        'secretStore.token',
        secretStore.token,
        'the provider reads CLOUDTASER_SECRETSTORE_TOKEN from the environment so the token never lands in cdktf.out',
      );
      if (secretStore.provider === undefined && secretStore.address === undefined)
        throw new ConstructRefusal(
          "'secretStore.address' is required (or pass an existing 'secretStore.provider')",
        );
      requireHttpUrl('secretStore.address', secretStore.address, 'https://openbao.example.eu:8200');
    });
    // The stack's provider for these settings (shared with RegisteredCluster), so it outlives this construct.
    const provider = secretStore.provider ?? secretStoreProvider(this, secretStore);
    this.resource = new BeaconClientCa(this, 'Resource', { provider });
    this.caCertPem = this.resource.caCertPem;
    this.caSha256 = this.resource.caSha256;
  }
}
