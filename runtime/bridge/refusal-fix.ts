/**
 * What to do about a refused bootstrap, by its code: said by the bridge's log line and by `source doctor`, from
 * one place.
 */
export function bootstrapRefusalFix(code: string): string {
  if (code === 'CT_ALREADY_INITIALIZED')
    return 'the cluster bootstrapped once already (an operator reinstalled or its state lost): allow one more with `cloudtaser-cli source register --fingerprint <fingerprint> --rearm`, or register with attestation so restarts bootstrap on their own';
  if (code === 'CT_NOT_REGISTERED')
    return 'the cluster is not registered (or with another CA): `cloudtaser-cli source register --fingerprint <fingerprint>`';
  if (code === 'CT_ATTESTATION_FAILED')
    return "the operator's attestation token did not pass: check the registration's issuer and JWKS (re-register after a key rotation) and the operator's service account";
  if (code.startsWith('CT_OPENBAO_'))
    return 'the bridge could not read the registration from OpenBao: see bridge.poll_failed; the broker retries';
  return "see the broker's /status reason";
}
