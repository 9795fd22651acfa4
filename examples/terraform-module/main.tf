module "registration" {
  source = "./modules/registration"

  fingerprint            = var.fingerprint
  kubeconfig_path        = var.kubeconfig_path
  kubeconfig_context     = var.kubeconfig_context
  host                   = var.host
  cluster_ca_certificate = var.cluster_ca_certificate
  token                  = var.token
  exec                   = var.exec
  purge_on_destroy       = var.purge_on_destroy

  attestation = var.attestation
  # The operator release's own service account (release "cloudtaser" in release_namespace) unless named.
  attestation_service_account = coalesce(var.attestation_service_account, "${var.release_namespace}/cloudtaser")

  tokenreview_endpoint = var.tokenreview_endpoint
  tokenreview_ca_cert  = var.tokenreview_ca_cert
}

module "operator" {
  source = "./modules/operator"
  count  = var.deploy_operator ? 1 : 0

  beacon_address    = var.beacon_address
  ca_sha256         = module.registration.operational_hash
  attestation       = module.registration.attested
  chart_version     = var.chart_version
  chart_repository  = var.chart_repository
  release_namespace = var.release_namespace

  # The bridge must find the registration before the broker asks for it.
  depends_on = [module.registration]
}
