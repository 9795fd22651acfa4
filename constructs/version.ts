/** The cloudtaser release these constructs belong to: the default chart version and provider constraint. */
export { CLOUDTASER_VERSION } from '../runtime/core/version.js';

/** Where the published charts live. A local chart directory or another repository can be given instead. */
export const DEFAULT_CHART_REPOSITORY = 'oci://ghcr.io/cloudtaser/charts';
