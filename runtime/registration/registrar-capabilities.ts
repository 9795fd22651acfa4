/**
 * Whether the registrar's token may do what a registration change needs, asked of OpenBao before anything is
 * changed (`sys/capabilities-self`, which every token's `default` policy allows). The Terraform provider asks at
 * plan time: a replacement deregisters first, so a registrar whose policy does not cover the new namespace root
 * would otherwise leave the cluster unregistered until an admin fixes the policy.
 *
 * The paths asked are the registrar policy's own rows (policies.ts), with each `+` filled in for this cluster:
 * what the policy grants is what register and deregister need, so the two cannot drift apart.
 */
import { CloudtaserError } from '../core/errors.js';
import { fingerprintPrefix } from '../core/hashes.js';
import type { OpenBaoClient } from '../openbao/index.js';
import { DEFAULT_NAMESPACE_ROOT } from './layout.js';
import { POLICY_NAMES, POLICY_ROWS, type PolicyCapability, type PolicyRow } from './policies.js';

export interface RegistrarCapabilityCheck {
  readonly fingerprint: string;
  readonly namespaceRoot: string;
  /** Check what register needs (everything but `delete`). */
  readonly register: boolean;
  /** Check what deregister needs (`delete`, and its rows' `deregisterUses`): with `purge`, also what only a purge uses. */
  readonly deregister?: false | 'keep' | 'purge';
}

export interface MissingCapability {
  /** The path asked, from the root namespace, with this cluster's names filled in. */
  readonly path: string;
  readonly missing: readonly PolicyCapability[];
  readonly why: string;
}

/**
 * The policy path for this cluster, from the row as written (relative to its scope), so the namespace root's own
 * name never counts as a segment (a root named `clusters` once did): in the records mount `clusters/+` is the full
 * fingerprint; every other `+` (`sys/namespaces/+`, `prefixes/+`) is its 8-character prefix, and a cluster-scope
 * row lives in the namespace `<root>/<prefix>` (layout.ts `paths`).
 */
function concretePath(row: PolicyRow, namespaceRoot: string, fingerprint: string): string {
  const fp8 = fingerprintPrefix(fingerprint);
  const segments = row.path.replaceAll('{namespaceRoot}', namespaceRoot).split('/');
  const filled = segments
    .map((segment, i) => (segment !== '+' ? segment : segments[i - 1] === 'clusters' ? fingerprint : fp8))
    .join('/');
  if (row.scope === 'root') return filled;
  if (row.scope === 'namespace-root') return `${namespaceRoot}/${filled}`;
  return `${namespaceRoot}/${fp8}/${filled}`;
}

function needed(row: PolicyRow, check: RegistrarCapabilityCheck): PolicyCapability[] {
  return row.capabilities.filter((capability) => {
    if (capability !== 'delete')
      return (
        check.register || (Boolean(check.deregister) && row.deregisterUses?.includes(capability) === true)
      );
    if (!check.deregister) return false;
    return check.deregister === 'purge' || !row.purgeOnly?.includes('delete');
  });
}

/**
 * The registrar policy rows whose capabilities the client's token lacks for this cluster, empty when it has
 * them all (a root token has). One request. Throws the request's error (e.g. CT_OPENBAO_PERMISSION_DENIED when
 * the token has no `default` policy, so cannot ask).
 */
export async function missingRegistrarCapabilities(
  client: OpenBaoClient,
  check: RegistrarCapabilityCheck,
): Promise<MissingCapability[]> {
  const wanted = POLICY_ROWS.filter(
    (row) => row.identity === 'registrar' && row.feature !== 'beacon-client-ca',
  )
    .map((row) => ({
      path: concretePath(row, check.namespaceRoot, check.fingerprint),
      capabilities: needed(row, check),
      why: row.why,
    }))
    .filter((row) => row.capabilities.length > 0);
  if (wanted.length === 0) return [];
  const granted = await client.withNamespace('').capabilitiesSelf(wanted.map((row) => row.path));
  const missing: MissingCapability[] = [];
  for (const row of wanted) {
    const has = new Set(granted[row.path] ?? []);
    if (has.has('root')) continue;
    const lacking = has.has('deny') ? row.capabilities : row.capabilities.filter((c) => !has.has(c));
    if (lacking.length > 0) missing.push({ path: row.path, missing: lacking, why: row.why });
  }
  return missing;
}

/**
 * CT_OPENBAO_PERMISSION_DENIED naming what is missing and the command that writes the current policy, or
 * undefined when nothing is. `change` says what would have failed ("this replacement", ...).
 */
export function registrarPolicyError(
  missing: readonly MissingCapability[],
  namespaceRoot: string,
  change: string,
): CloudtaserError | undefined {
  if (missing.length === 0) return undefined;
  const shown = missing
    .slice(0, 3)
    .map((row) => `${row.missing.join(', ')} on ${row.path}`)
    .join('; ');
  const more = missing.length > 3 ? ` and ${missing.length - 3} more path(s)` : '';
  const rootFlag = namespaceRoot === DEFAULT_NAMESPACE_ROOT ? '' : ` --namespace-root ${namespaceRoot}`;
  return new CloudtaserError(
    'CT_OPENBAO_PERMISSION_DENIED',
    `the registrar's OpenBao token lacks what ${change} needs under namespace root "${namespaceRoot}": ` +
      `${shown}${more}. Nothing was changed. Have an OpenBao admin write the current registrar policy ` +
      `(cloudtaser-cli source policy registrar${rootFlag} | bao policy write ${POLICY_NAMES.registrar} -), then plan again`,
    { details: { namespaceRoot, missing: missing.map((row) => ({ path: row.path, missing: row.missing })) } },
  );
}
