import { parseFingerprint } from '../core/index.js';
import { KubeClient } from './client.js';
import type { KubeConnection } from './connection.js';

/**
 * Reads the cluster fingerprint: the UID of the `kube-system` namespace. Needs RBAC `get` on
 * `namespaces` named `kube-system` at cluster scope.
 */
export async function readClusterFingerprint(
  connection: KubeConnection,
  opts: { signal?: AbortSignal; timeoutMs?: number; interactive?: boolean } = {},
): Promise<string> {
  const client = KubeClient.fromConnection(connection, {
    timeoutMs: opts.timeoutMs,
    interactive: opts.interactive,
  });
  try {
    const namespace = await client.getNamespace('kube-system', { signal: opts.signal });
    return parseFingerprint(namespace.metadata?.uid);
  } finally {
    client.close();
  }
}
