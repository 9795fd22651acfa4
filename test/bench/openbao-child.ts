/**
 * The OpenBao test server in a process of its own, for the benchmarks: a pod and the bridge both reach
 * OpenBao across a process boundary in production, so the baseline read must too. Serves HTTPS (as OpenBao
 * does in production) with the certificate in CT_BENCH_OPENBAO_TLS (JSON `{certPem, keyPem}`), reports
 * `{address, rootToken}` over IPC and exits when the parent disconnects. Answers `{cmd: 'requests'}` with
 * `{requests: <count of requests served so far>}`, so a benchmark counts what OpenBao saw.
 */
import { startOpenBaoTestServer } from '../../runtime/dev/openbao/index.js';

const tls = JSON.parse(process.env.CT_BENCH_OPENBAO_TLS ?? 'null') as {
  certPem: string;
  keyPem: string;
} | null;
const server = await startOpenBaoTestServer(tls ? { tls } : {});
process.send!({ address: server.address, rootToken: server.rootToken });
process.on('message', (message: { cmd?: string }) => {
  if (message.cmd === 'requests') process.send!({ requests: server.requestLog().length });
});
process.on('disconnect', () => {
  void server.close().finally(() => process.exit(0));
});
