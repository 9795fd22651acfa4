/**
 * Where users get the Helm charts: the OCI registry (Helm >= 3.8 pulls `oci://` charts without `helm repo add`),
 * one version per cloudtaser release. The constructs' default (`constructs/version.ts`), the Terraform module's
 * default, the README and the charts README say the same; `test/charts/chart-location.test.ts` keeps them equal.
 * The npm package also carries the charts (`runtime/charts/<chart>`) for installs without a registry.
 */
export const CHART_REPOSITORY = 'oci://ghcr.io/cloudtaser/charts';
export const CHART_VERSION = '0.2.0';
export const OPERATOR_NAMESPACE = 'cloudtaser-system';

/** The operator chart as `helm install` takes it: the OCI reference with its version. */
export const OPERATOR_CHART = `${CHART_REPOSITORY}/cloudtaser --version ${CHART_VERSION}`;

/**
 * The `helm install` of the operator chart with the one value it needs, the optional CA pin and, for a
 * registration without attested bootstrap, attestation off: the chart's default (on) only helps a registration
 * that is attested, and its notes then promise a restarted operator bootstraps again on its own.
 */
export function operatorInstallCommand(
  beaconAddress: string,
  caSha256?: string,
  options: { readonly attested?: boolean } = {},
): string {
  return [
    `helm install cloudtaser ${OPERATOR_CHART}`,
    `--namespace ${OPERATOR_NAMESPACE} --create-namespace`,
    `--set operator.broker.beacon.address=${beaconAddress}`,
    ...(caSha256 ? [`--set operator.broker.trust.caSha256=${caSha256}`] : []),
    ...(options.attested === false ? ['--set operator.broker.attestation.enabled=false'] : []),
  ].join(' ');
}
