output "release_name" {
  description = "Name of the operator's Helm release."
  value       = helm_release.operator.name
}

output "release_namespace" {
  description = "Kubernetes namespace of the operator."
  value       = helm_release.operator.namespace
}
