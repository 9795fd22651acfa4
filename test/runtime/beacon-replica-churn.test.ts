/**
 * The bridge keeps pacing state per beacon replica address (a circuit that paces dials to an unreachable replica,
 * a bound on dials opening at once). Beacon pods get new addresses on every rollout or reschedule; the state of
 * addresses DNS no longer gives used to stay for the life of the process (~2 KB each), growing with every beacon
 * pod the bridge ever waited on. It goes with them now.
 */
import { describe, expect, it } from 'vitest';
import { createBeaconReplicaSet } from '../../runtime/bridge/beacon-replicas.js';
import { silentLogger } from '../../runtime/core/log.js';

describe('beacon replica pacing state', () => {
  it('forgets the circuit and admission of addresses gone from DNS, and keeps those still given', async () => {
    let generation = 0;
    const ipsOf = (g: number) => [`10.0.${g}.1`, '10.9.9.9'];
    const replicas = createBeaconReplicaSet({
      beacons: ['beacon.example:443'],
      resolve: async () => ipsOf(generation),
      proxy: { kind: 'direct', source: 'test' },
      dialConcurrency: 4,
      backoffInitialMs: 10,
      backoffMaxMs: 100,
      log: silentLogger,
    });
    await replicas.refresh();
    const gone = { circuit: replicas.circuitFor('10.0.0.1'), admission: replicas.admissionFor('10.0.0.1') };
    const stays = { circuit: replicas.circuitFor('10.9.9.9'), admission: replicas.admissionFor('10.9.9.9') };
    generation = 1;
    expect(await replicas.refresh()).toBe(true);
    // A replica still in DNS keeps its state; one gone from it starts afresh if it ever comes back.
    expect(replicas.circuitFor('10.9.9.9')).toBe(stays.circuit);
    expect(replicas.admissionFor('10.9.9.9')).toBe(stays.admission);
    expect(replicas.circuitFor('10.0.0.1')).not.toBe(gone.circuit);
    expect(replicas.admissionFor('10.0.0.1')).not.toBe(gone.admission);
  });
});
