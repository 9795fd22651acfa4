/**
 * What one `register` costs OpenBao. Over a WAN to an EU OpenBao each request is a round trip (tens of ms), and
 * `terraform apply` runs register once per cluster. A run used to read the cluster namespace three times, list the
 * cluster's mount table twice, read the cluster CA twice and `initialized` twice (first run: 31 requests, re-run:
 * 17). Now no path is read twice in a run except the discovery journal (its `begin` and `end` are separate
 * check-and-set appends) and, on the first run, the namespace right before its creation.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../runtime/openbao/index.js';
import { registerCluster } from '../../runtime/registration/index.js';
import { provisionIdentities } from '../openbao-identities.js';

let server: OpenBaoTestServer;
let admin: OpenBaoClient;
let registrar: OpenBaoClient;

beforeAll(async () => {
  server = await startOpenBaoTestServer();
  admin = new OpenBaoClient({ address: server.address, token: server.rootToken });
  registrar = admin.withToken((await provisionIdentities(admin)).registrarToken);
  // Another cluster first: the root namespace, its mounts and the shared CAs exist, as in a fleet.
  await registerCluster(registrar, { fingerprint: randomUUID() });
});
afterAll(async () => {
  await admin?.close();
  await server?.close();
});

/** The requests one register run makes, as `METHOD namespace path`. */
async function requestsOf(fingerprint: string): Promise<string[]> {
  const since = server.requestLog().length;
  await registerCluster(registrar, { fingerprint });
  return server
    .requestLog()
    .slice(since)
    .map((entry) => `${entry.method} ${entry.namespace ?? ''} ${entry.path}`);
}

function readTwice(requests: string[]): string[] {
  const reads = requests.filter((line) => line.startsWith('GET ') && !line.endsWith('/discovery/journal'));
  return [...new Set(reads.filter((line, i) => reads.indexOf(line) !== i))];
}

describe('the OpenBao requests of one register', () => {
  it('reads no path twice, on a first run and on a re-run', async () => {
    const fingerprint = randomUUID();
    const first = await requestsOf(fingerprint);
    const again = await requestsOf(fingerprint);
    // The namespace is read by the clash check, then by the create that must not overwrite one made meanwhile.
    // The prefix claim is read and written on the first run, read on a re-run, which lists no cluster records.
    expect(readTwice(first)).toEqual([`GET cloudtaser /v1/sys/namespaces/${fingerprint.slice(0, 8)}`]);
    // A re-run reads the cluster CA again once its record is in place: a deregister --purge running meanwhile
    // would have deleted it (a record must never name a CA that is gone); and it reads whether a deregistration
    // marked the namespace as kept, which decides a re-arm window. Two reads more than before stop 38.
    expect(readTwice(again)).toEqual([
      `GET cloudtaser/${fingerprint.slice(0, 8)} /v1/cloudtaser/data/system/bridge-ca`,
    ]);
    expect({ first: first.length, again: again.length }).toEqual({ first: 29, again: 16 });
    const listsClusters = (requests: string[]) =>
      requests.some((line) => line.includes('/metadata/clusters'));
    expect({ first: listsClusters(first), again: listsClusters(again) }).toEqual({
      first: true,
      again: false,
    });
  });
});
