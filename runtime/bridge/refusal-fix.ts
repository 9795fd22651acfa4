/**
 * What to do about a refused bootstrap, by its code: said by the bridge's log line and by `source doctor`, from
 * one place.
 */
export function bootstrapRefusalFix(code: string, why?: string): string {
  // Anyone who knows a fingerprint can draw this refusal: re-arming on its word alone would open the one-time
  // first contact to whoever keeps trying. The cluster's own broker must be the one refused.
  if (code === 'CT_ALREADY_INITIALIZED')
    return "anyone who knows the fingerprint can cause this refusal: first check in the cluster that the operator's own broker is the one refused (`cloudtaser-cli target doctor`, or its /status: phase rejected, CT_ALREADY_INITIALIZED). Only then (an operator reinstalled or its state lost) allow one more bootstrap with `cloudtaser-cli source register --fingerprint <fingerprint> --rearm`, or register with attestation so restarts bootstrap on their own";
  if (code === 'CT_NOT_REGISTERED')
    return 'the cluster is not registered (or with another CA): `cloudtaser-cli source register --fingerprint <fingerprint>`';
  // A token outside its validity is a clock to check, not keys: an outside drill with the bridge 2 h behind was
  // sent to the JWKS.
  if (code === 'CT_ATTESTATION_FAILED' && (why === 'not-yet-valid' || why === 'expired'))
    return `the operator's attestation token was refused as ${why === 'expired' ? 'expired' : 'not valid yet'}: check the clocks of the bridge's and the cluster's nodes (NTP); the broker asks for a fresh token on every attempt`;
  if (code === 'CT_ATTESTATION_FAILED')
    return `the operator's attestation token did not pass${why ? ` (${why})` : ''}: check the registration's issuer and JWKS (re-register after a key rotation) and the operator's service account`;
  if (code.startsWith('CT_OPENBAO_'))
    return 'the bridge could not read the registration from OpenBao: see bridge.poll_failed; the broker retries';
  return "see the broker's /status reason";
}

/**
 * True when a TLS refusal says a certificate is outside its validity (not yet valid, expired): a clock to check
 * (NTP on the nodes), not a CA to add. Said by the bridge's log line and by `source doctor`.
 */
export function isValidityRefusal(message: string): boolean {
  return /not valid (before|after)|expired|not yet valid/i.test(message);
}
