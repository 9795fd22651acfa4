output "fingerprint" {
  description = "The cluster's fingerprint (kube-system namespace UID)."
  value       = cloudtaser_cluster_registration.this.fingerprint
}

output "namespace" {
  description = "The cluster's OpenBao namespace."
  value       = cloudtaser_cluster_registration.this.namespace
}

output "init_hash" {
  description = "Beacon room of the one-time bootstrap: SHA-256 of cloudtaser-init:<fingerprint>."
  value       = cloudtaser_cluster_registration.this.init_hash
}

output "operational_hash" {
  description = "SHA-256 of the cluster CA certificate: the tunnel's room and the operator's CA pin."
  value       = cloudtaser_cluster_registration.this.operational_hash
}

output "ca_cert_pem" {
  description = "The cluster CA certificate (public)."
  value       = cloudtaser_cluster_registration.this.ca_cert_pem
}

output "attested" {
  description = "Whether bootstrap requires an attestation token: pass it to the operator chart (operator.broker.attestation.enabled)."
  value       = cloudtaser_cluster_registration.this.attested
}
