export { createHttpDispatcher, type HttpDispatcherOptions } from './dispatcher.js';
export { proxyFailure, refusal, tunnelFailure } from './errors.js';
export {
  authority,
  beaconProxySetting,
  NO_PROXY_FLAG_VALUE,
  NoProxyList,
  type ProxyDestination,
  ProxyEndpoint,
  type ProxyRoute,
  type ProxySetting,
  parseProxyUrl,
  proxySettingFromEnvironment,
  redactProxyUrl,
  routeFor,
} from './settings.js';
export { openProxyTunnel, type TunnelOptions } from './tunnel.js';
