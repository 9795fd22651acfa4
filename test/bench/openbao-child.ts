/**
 * The OpenBao test server in a process of its own, for the benchmarks: a pod and the bridge both reach
 * OpenBao across a process boundary in production, so the baseline read must too. Serves HTTPS (as OpenBao
 * does in production) with the certificate in CT_BENCH_OPENBAO_TLS (JSON `{certPem, keyPem}`), reports
 * `{address, rootToken}` over IPC and exits when the parent disconnects. Answers `{cmd: 'requests'}` with
 * `{requests: <count of requests served so far>}`, so a benchmark counts what OpenBao saw, and
 * `{cmd: 'routes', since: <count>}` with `{routes: {"<METHOD> <path> [<namespace>]": <count>}}` for the requests
 * served after the first `since`, per-cluster path and namespace segments folded to `*`: which requests they were.
 */
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';

const tls = JSON.parse(process.env.CT_BENCH_OPENBAO_TLS ?? 'null') as {
  certPem: string;
  keyPem: string;
} | null;
const server = await startOpenBaoTestServer(tls ? { tls } : {});
process.send!({ address: server.address, rootToken: server.rootToken });
process.on('message', (message: { cmd?: string; since?: number }) => {
  if (message.cmd === 'requests') process.send!({ requests: server.requestLog().length });
  if (message.cmd === 'routes') process.send!({ routes: routeCounts(message.since ?? 0) });
});

/** A fingerprint (UUID) or a namespace's fingerprint prefix names one cluster; the route is what matters. */
function foldClusterSegments(text: string): string {
  return text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '*')
    .replace(/(^|\/)[0-9a-f]{8}(?=\/|$)/gi, '$1*');
}

function routeCounts(since: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const entry of server.requestLog().slice(since)) {
    const namespace = entry.namespace ? ` [${foldClusterSegments(entry.namespace)}]` : '';
    const key = `${entry.method} ${foldClusterSegments(entry.path)}${namespace} ${entry.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
process.on('disconnect', () => {
  void server.close().finally(() => process.exit(0));
});
