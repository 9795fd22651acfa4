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

/**
 * What to do when the beacon refuses this bridge (CT_BEACON_UNAUTHENTICATED), by the beacon's reason: a clock for a
 * certificate outside its validity, this bridge's identity when it sent none, else the beacon's bridge CAs. Said
 * by the bridge's log line and by `source doctor` (an outside docs drill ran a bridge without an identity and was
 * told to give the beacon a CA it already had).
 */
export function beaconRefusalFix(message: string): string {
  if (isValidityRefusal(message))
    return "the bridge's client certificate is outside its validity on the beacon's clock: check the clocks (NTP) of the bridge and beacon nodes";
  if (/no client certificate was presented|plain door carries no client certificate/i.test(message))
    return 'this bridge sent no client certificate: run it with its beacon client identity (--beacon-client-identity openbao, the default, or files with --beacon-client-cert/--beacon-client-key) over the tls or wss door';
  return 'give the beacon the beacon client CA of this bridge (`cloudtaser-cli source beacon-ca` prints it; beacon --bridge-ca, Helm beacon.bridgeAuth.caPems)';
}
