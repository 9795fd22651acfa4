/** The suite's way to the least-privilege identities (the same code `dev up` uses). */
export { APPROLE_MOUNT, type CloudtaserIdentities, provisionIdentities } from '../runtime/dev/identities.js';
