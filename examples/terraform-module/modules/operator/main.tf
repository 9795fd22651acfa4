# The operator chart with the one value it needs (the beacon address) and the CA pin. Nothing secret.

resource "helm_release" "operator" {
  name             = "cloudtaser"
  namespace        = var.release_namespace
  create_namespace = true
  repository       = var.chart_repository
  chart            = "cloudtaser"
  version          = var.chart_version
  values           = [yamlencode(var.values)]

  set = [
    {
      name  = "operator.broker.beacon.address"
      value = var.beacon_address
      type  = "string"
    },
    {
      name  = "operator.broker.trust.caSha256"
      value = var.ca_sha256
      type  = "string"
    },
    {
      name  = "operator.broker.attestation.enabled"
      value = tostring(var.attestation)
      type  = "auto"
    },
  ]
}
