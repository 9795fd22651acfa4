/**
 * Answers the pod API gives as OpenBao would, found missing or different by an outside test with real clients'
 * request sequences: a PATCH is a JSON merge patch or nothing (internal/http/logical.go: 415 "PATCH requires
 * Content-Type of application/merge-patch+json, provided ..."; the pod API forwarded any PATCH as a merge patch,
 * so a client that worked through cloudtaser broke against OpenBao), and `bao status` asks sys/leader after
 * sys/seal-status and exits 1 when it fails (command/status.go; the pod API refused it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PodApiServer } from '../../runtime/podapi/server.js';
import { startPlainPodApi } from '../support/raw-pod-client.js';

let api: PodApiServer | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('pod API answers as OpenBao', () => {
  it("answers OpenBao's 415 to a PATCH that is not a merge patch and lets a merge patch through", async () => {
    api = await startPlainPodApi({});
    const patch = (contentType?: string) =>
      fetch(`http://127.0.0.1:${api!.port}/v1/secret/data/app/db`, {
        method: 'PATCH',
        headers: { 'x-vault-token': 't', ...(contentType ? { 'content-type': contentType } : {}) },
        body: JSON.stringify({ data: { p: '1' } }),
      });
    const json = await patch('application/json');
    expect(json.status).toBe(415);
    expect(await json.json()).toEqual({
      errors: ['PATCH requires Content-Type of application/merge-patch+json, provided application/json'],
    });
    expect((await patch()).status).toBe(415);
    // The merge patch passes the allow-list (no tunnel here: answered as unavailable).
    const merge = await patch('application/merge-patch+json; charset=utf-8');
    expect(merge.status).toBe(503);
    expect(await merge.text()).toContain('CT_TUNNEL_CLOSED');
  });

  it("answers sys/leader itself, as one server that is not an HA cluster, and never with OpenBao's addresses", async () => {
    api = await startPlainPodApi({});
    const leader = await fetch(`http://127.0.0.1:${api.port}/v1/sys/leader`);
    expect(leader.status).toBe(200);
    expect(await leader.json()).toMatchObject({
      ha_enabled: false,
      leader_address: '',
      leader_cluster_address: '',
    });
    expect((await fetch(`http://127.0.0.1:${api.port}/v1/sys/leader`, { method: 'PUT' })).status).toBe(405);
  });
});
