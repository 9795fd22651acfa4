/**
 * Create-once records (the cluster CA, the TokenReview listener CA, the beacon client CA) are written with
 * check-and-set 0, so two runs at the same moment agree on the first one written. OpenBao decides the capability a
 * write needs by the KV v2 existence check (the first write needs `create`, later ones `update`) and checks the
 * policy before the request reaches the engine's check-and-set (router: `CheckToken` before the backend). The
 * shipped registrar policy may only `create` those records, so the run that lost the race hears "permission
 * denied", not a check-and-set mismatch (the OpenBao test server does the same, from the same facts).
 */
import { sleep } from '../core/backoff.js';
import { CloudtaserError, isCloudtaserError } from '../core/errors.js';

/** Reads after a refused create while another writer's record may still be reaching a standby. */
const LOST_RACE_READS_AFTER_MS = [0, 50, 200];

/**
 * `err` from a create-once write, as the caller's conflict handling should see it: a permission refusal whose
 * record exists now (another run created it a moment ago) becomes the check-and-set mismatch it stands for; any
 * other error, or a refusal with still no record (the policy really lacks `create`, or the record was soft-deleted
 * and writing it again is an update), is returned unchanged.
 */
export async function asLostCreateRace(err: unknown, recordExists: () => Promise<boolean>): Promise<unknown> {
  if (!isCloudtaserError(err, 'CT_OPENBAO_PERMISSION_DENIED')) return err;
  for (const waitMs of LOST_RACE_READS_AFTER_MS) {
    if (waitMs > 0) await sleep(waitMs);
    if (await recordExists().catch(() => false))
      return new CloudtaserError(
        'CT_OPENBAO_CAS_MISMATCH',
        'another run created this record a moment before this one (a create-only policy hears that as permission denied)',
        { cause: err },
      );
  }
  return err;
}
