/**
 * DEV-ONLY: an OpenBao-compatible test server for tests and the local demo. It never stands in for OpenBao in
 * production code paths.
 */
export {
  type ForwardedForOptions,
  type InjectedFault,
  type OpenBaoStandby,
  type OpenBaoTestServer,
  type OpenBaoTestServerOptions,
  type RequestLogEntry,
  type StandbyOptions,
  startOpenBaoTestServer,
} from './server.js';
