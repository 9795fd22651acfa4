output "fingerprint" {
  description = "The cluster's fingerprint (kube-system namespace UID)."
  value       = module.registration.fingerprint
}

output "namespace" {
  description = "The cluster's OpenBao namespace."
  value       = module.registration.namespace
}

output "init_hash" {
  description = "Beacon room of the one-time bootstrap."
  value       = module.registration.init_hash
}

output "operational_hash" {
  description = "SHA-256 of the cluster CA certificate (the operator's CA pin)."
  value       = module.registration.operational_hash
}

output "operator_values" {
  description = "Helm values for the operator chart, for ArgoCD or Flux when deploy_operator is false. Nothing secret."
  value = {
    operator = {
      broker = {
        beacon      = { address = var.beacon_address }
        trust       = { caSha256 = module.registration.operational_hash }
        attestation = { enabled = module.registration.attested }
      }
    }
  }
}
