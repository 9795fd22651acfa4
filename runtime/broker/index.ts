export { type BrokerBootstrapOptions, type BrokerCredentials, bootstrapBroker } from './bootstrap.js';
export {
  type BrokerHandle,
  type BrokerOptions,
  type BrokerPhase,
  type BrokerStatus,
  type BrokerTiming,
  DEFAULT_BROKER_TIMING,
  startBroker,
} from './broker.js';
