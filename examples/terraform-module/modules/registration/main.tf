# Registration only: needs nothing but the cloudtaser provider (configured by the caller).

locals {
  # One data source per connection kind, so each block only ever carries that kind's settings.
  connection = (
    var.fingerprint != null ? "none" :
    var.host == null ? "kubeconfig" :
    var.exec != null ? "exec" : "token"
  )
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
  fingerprint = coalesce(
    var.fingerprint,
    one(data.cloudtaser_cluster_fingerprint.kubeconfig[*].fingerprint),
    one(data.cloudtaser_cluster_fingerprint.exec[*].fingerprint),
    one(data.cloudtaser_cluster_fingerprint.token[*].fingerprint),
  )
  purge_on_destroy = var.purge_on_destroy
}
