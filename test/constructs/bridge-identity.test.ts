/**
 * Bridge authentication in the constructs: `BridgeIdentity` makes the beacon client CA (only its certificate in
 * `cdktf.out`), `Beacon.admitBridges` gives the beacon that public CA, the `Bridge` mints its certificate from it
 * and starts after it exists. Anonymous bridges are an explicit, exclusive choice.
 */
import { HelmProvider } from '@cdktf/provider-helm/lib/provider/index.js';
import { describe, expect, it } from 'vitest';
import { Testing } from '../../constructs/cdktf.js';
import {
  Beacon,
  Bridge,
  BridgeAuth,
  BridgeBeaconCertificate,
  BridgeIdentity,
} from '../../constructs/index.js';
import { newStack, only, secretsIn, synthJson, type TerraformJson } from './synth.js';

const kubernetes = { configPath: '/home/ops/.kube/eu-config' };
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n';

function settings(release: TerraformJson): Record<string, string> {
  return Object.fromEntries(release.set.map((s: { name: string; value: string }) => [s.name, s.value]));
}

function releaseOf(json: TerraformJson, chart: string): TerraformJson {
  return Object.values(json.resource.helm_release as Record<string, TerraformJson>).find(
    (r) => r.chart === chart,
  )!;
}

describe('bridges authenticate to the beacon, wired by the constructs', () => {
  it('creates the beacon client CA once, gives its public certificate to the beacon, and starts the bridge after it', () => {
    const stack = newStack();
    const helmProvider = new HelmProvider(stack, 'eu', { kubernetes });
    const identity = new BridgeIdentity(stack, 'bridge-identity', {
      secretStore: { address: 'https://openbao.example.eu:8200' },
    });
    const beacon = new Beacon(stack, 'relay', { helmProvider });
    beacon.admitBridges(identity);
    new Bridge(stack, 'bridge', {
      beacon: { address: beacon.headlessAddress },
      openBao: { address: 'https://openbao.openbao.svc:8200' },
      auth: BridgeAuth.appRoleFromSecret({ secretName: 'bridge-approle' }),
      beaconCertificate: BridgeBeaconCertificate.minted(identity),
      helmProvider,
    });
    const text = Testing.synth(stack);
    const json = JSON.parse(text);
    const ca = only(json.resource.cloudtaser_beacon_client_ca);
    expect(ca.provider).toMatch(/^cloudtaser\./);
    expect(only(json.provider.cloudtaser)).toMatchObject({
      secretstore_address: 'https://openbao.example.eu:8200',
    });
    const beaconRelease = releaseOf(json, 'cloudtaser-beacon');
    const caAddress = `cloudtaser_beacon_client_ca.${Object.keys(json.resource.cloudtaser_beacon_client_ca)[0]}`;
    // The beacon's value references the CA's certificate (so Terraform orders them by itself).
    expect(settings(beaconRelease)).toMatchObject({
      'beacon.bridgeAuth.allowAnonymous': 'false',
      'beacon.bridgeAuth.caPems[0]': `\${${caAddress}.ca_cert_pem}`,
    });
    const bridgeRelease = releaseOf(json, 'cloudtaser-bridge');
    expect(settings(bridgeRelease)['bridge.beacon.clientIdentity.source']).toBe('openbao');
    expect(bridgeRelease.depends_on).toContain(caAddress);
    // Nothing private: the CA's key stays in OpenBao.
    expect(secretsIn(text)).toEqual([]);
  });

  it('admits several operators at one beacon (identities or PEM certificates), in order', () => {
    const stack = newStack();
    const beacon = new Beacon(stack, 'relay', { kubernetes, bridges: [PEM] });
    const other = new BridgeIdentity(stack, 'other-operator', {
      secretStore: { address: 'https://bao.other.eu' },
    });
    beacon.admitBridges(other);
    const json = synthJson(stack);
    const caAddress = `cloudtaser_beacon_client_ca.${Object.keys(json.resource.cloudtaser_beacon_client_ca)[0]}`;
    expect(settings(only(json.resource.helm_release))).toMatchObject({
      'beacon.bridgeAuth.caPems[0]': PEM,
      'beacon.bridgeAuth.caPems[1]': `\${${caAddress}.ca_cert_pem}`,
    });
  });

  it('reads the bridge certificate from a TLS Secret when asked, with no CA resource', () => {
    const stack = newStack();
    new Bridge(stack, 'bridge', {
      beacon: { address: 'beacon.example.com:443' },
      openBao: { address: 'https://openbao.openbao.svc:8200' },
      auth: BridgeAuth.appRoleFromSecret({ secretName: 'bridge-approle' }),
      beaconCertificate: BridgeBeaconCertificate.fromSecret('bridge-beacon-client'),
      kubernetes,
    });
    const json = synthJson(stack);
    expect(settings(only(json.resource.helm_release))).toMatchObject({
      'bridge.beacon.clientIdentity.source': 'files',
      'bridge.beacon.clientIdentity.secretName': 'bridge-beacon-client',
    });
    expect(json.resource.cloudtaser_beacon_client_ca).toBeUndefined();
  });

  it.each([
    [
      () => new Beacon(newStack(), 'b', { kubernetes, allowAnonymousBridges: true, bridges: [PEM] }),
      /'bridges' is not supported if 'allowAnonymousBridges'/,
    ],
    [
      () => new Beacon(newStack(), 'b', { kubernetes, allowAnonymousBridges: true }).admitBridges(PEM),
      /'admitBridges\(\)' is not supported/,
    ],
    [
      () => new Beacon(newStack(), 'b', { kubernetes }).admitBridges('not a certificate'),
      /takes a BridgeIdentity or a PEM CA certificate/,
    ],
    [() => new BridgeIdentity(newStack(), 'i', { secretStore: {} }), /'secretStore\.address' is required/],
    [
      () =>
        new BridgeIdentity(newStack(), 'i', {
          secretStore: { address: 'https://x', token: 'hvs.x' } as never,
        }),
      /'secretStore\.token'/,
    ],
    [
      () => BridgeBeaconCertificate.fromSecret('Not A Name'),
      /BridgeBeaconCertificate\.fromSecret\(secretName\)/,
    ],
  ])('refuses a misconfiguration at synth time, naming the prop (%#)', (make, message) => {
    expect(make).toThrow(message);
  });

  it('lets anonymous bridges in only when asked explicitly', () => {
    const stack = newStack();
    new Beacon(stack, 'relay', { kubernetes, allowAnonymousBridges: true });
    expect(settings(only(synthJson(stack).resource.helm_release))['beacon.bridgeAuth.allowAnonymous']).toBe(
      'true',
    );
  });
});
