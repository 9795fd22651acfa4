/**
 * Domain code behind a lazy import: the OpenBao client and registration. Terraform starts 3-5 provider
 * processes per command and most never touch OpenBao; in the bundle this module is embedded as text and
 * compiled only on first use (see packaging/bundle.ts).
 */

export { createLogger } from '../../runtime/core/log.js';
export * as openbao from '../../runtime/openbao/index.js';
export * as registration from '../../runtime/registration/index.js';
