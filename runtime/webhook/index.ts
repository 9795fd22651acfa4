export {
  type AdmissionResponse,
  type AdmissionReviewReply,
  admissionReply,
  DEFAULT_INJECTED_RESOURCES,
  DEFAULT_TOKEN_AUDIENCE,
  INIT_CONTAINER_ARGS,
  INIT_CONTAINER_NAME,
  INJECT_LABEL,
  INJECTED_ANNOTATION,
  type InjectedResources,
  type InjectionConfig,
  NOT_CONNECTED_MESSAGE,
  notConnectedMessage,
  parseAdmissionReview,
  parseInjectedResources,
  ROLE_ANNOTATION,
  reviewPod,
  SECRET_ANNOTATION_PREFIX,
  TOKEN_AUDIENCE_ANNOTATION,
  TOKEN_EXPIRATION_SECONDS,
  TOKEN_FILE,
  TOKEN_MOUNT_PATH,
  TOKEN_VOLUME_NAME,
  VOLUME_NAME,
  type WebhookState,
} from './admission.js';
export {
  caBundlePatch,
  keepWebhookCaBundle,
  type WebhookCaBundleKeeper,
  type WebhookCaBundleOptions,
  type WebhookCaBundleStatus,
  type WebhookConfigurationApi,
} from './ca-bundle.js';
export { registerPodCommands } from './command.js';
export { type FetchPodSecretsOptions, fetchPodSecrets, SERVICE_ACCOUNT_TOKEN_PATH } from './fetch.js';
export { startWebhookServer, WEBHOOK_PATH, type WebhookServer, type WebhookServerOptions } from './server.js';
