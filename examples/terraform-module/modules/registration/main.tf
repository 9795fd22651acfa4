# Registration only: needs nothing but the cloudtaser provider (configured by the caller).

locals {
  # One data source per connection kind, so each block only ever carries that kind's settings.
  connection = (
    var.fingerprint != null ? "none" :
    var.host == null ? "kubeconfig" :
    var.exec != null ? "exec" : "token"
  )
  read = concat(
    data.cloudtaser_cluster_fingerprint.kubeconfig,
    data.cloudtaser_cluster_fingerprint.exec,
    data.cloudtaser_cluster_fingerprint.token,
  )
  # Explicit values win; otherwise what the cluster serves (null, with a provider warning, when it does not).
  attestation_issuer = var.attestation ? try(coalesce(var.attestation_issuer, one(local.read[*].service_account_issuer)), null) : null
  attestation_jwks   = var.attestation ? try(coalesce(var.attestation_jwks, one(local.read[*].service_account_jwks)), null) : null
}

data "cloudtaser_cluster_fingerprint" "kubeconfig" {
  count = local.connection == "kubeconfig" ? 1 : 0

  kubeconfig_path = var.kubeconfig_path
  context         = var.kubeconfig_context
}

data "cloudtaser_cluster_fingerprint" "exec" {
  count = local.connection == "exec" ? 1 : 0

  host                   = var.host
  cluster_ca_certificate = var.cluster_ca_certificate

  exec {
    api_version = var.exec.api_version
    command     = var.exec.command
    args        = var.exec.args
    env         = var.exec.env
  }
}

data "cloudtaser_cluster_fingerprint" "token" {
  count = local.connection == "token" ? 1 : 0

  host                   = var.host
  token                  = var.token
  cluster_ca_certificate = var.cluster_ca_certificate
}

resource "cloudtaser_cluster_registration" "this" {
  fingerprint      = coalesce(var.fingerprint, one(local.read[*].fingerprint))
  purge_on_destroy = var.purge_on_destroy

  attestation_issuer          = local.attestation_issuer
  attestation_jwks            = local.attestation_jwks
  attestation_service_account = local.attestation_issuer == null ? null : var.attestation_service_account

  # Where OpenBao's Kubernetes auth reaches the bridge's TokenReview Service (the bridge chart's NOTES print it).
  tokenreview_endpoint = var.tokenreview_endpoint
  tokenreview_ca_cert  = var.tokenreview_ca_cert

  lifecycle {
    precondition {
      condition     = !var.attestation || local.attestation_issuer == null || local.attestation_jwks != null
      error_message = "attestation needs both the issuer and the JWKS; give attestation_jwks with attestation_issuer, or set attestation = false."
    }
  }
}
