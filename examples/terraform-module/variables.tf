variable "secretstore_address" {
  description = "The EU OpenBao, e.g. https://openbao.example.eu:8200. Its token comes from CLOUDTASER_SECRETSTORE_TOKEN, never from a variable."
  type        = string
}

variable "beacon_address" {
  description = "The beacon the operator dials: host:port or wss://host[:port]."
  type        = string
}

variable "fingerprint" {
  description = "The cluster's fingerprint, when known. Leave null to read it through the connection below."
  type        = string
  default     = null
}

variable "kubeconfig_path" {
  description = "Kubeconfig for the cluster (fingerprint read and Helm release), when host is null."
  type        = string
  default     = null
}

variable "kubeconfig_context" {
  description = "Kubeconfig context to use."
  type        = string
  default     = null
}

variable "host" {
  description = "Kubernetes API server URL (with exec or token) instead of a kubeconfig."
  type        = string
  default     = null
}

variable "cluster_ca_certificate" {
  description = "PEM CA certificate of the API server."
  type        = string
  default     = null
}

variable "token" {
  description = "Bearer token for host. Prefer exec."
  type        = string
  default     = null
  sensitive   = true
}

variable "exec" {
  description = "Credential plugin for host (gke-gcloud-auth-plugin, aws eks get-token, kubelogin)."
  type = object({
    api_version = string
    command     = string
    args        = optional(list(string), [])
    env         = optional(map(string), {})
  })
  default = null
}

variable "deploy_operator" {
  description = "Install the operator chart here. Set false when ArgoCD or Flux deploys it (use the operator_values output)."
  type        = bool
  default     = true
}

variable "chart_version" {
  description = "Version of the cloudtaser operator chart."
  type        = string
  default     = "0.2.0"
}

variable "chart_repository" {
  description = "Chart repository (oci:// or https://)."
  type        = string
  default     = "oci://ghcr.io/cloudtaser/charts"
}

variable "purge_on_destroy" {
  description = "Also delete the cluster's OpenBao namespace and its workload secrets on destroy."
  type        = bool
  default     = false
}

variable "attestation" {
  description = "Require an attested bootstrap (issuer and keys read through the cluster connection). See modules/registration."
  type        = bool
  default     = true
}

variable "attestation_service_account" {
  description = "namespace/name of the operator's service account; null for the operator release's own (<release_namespace>/cloudtaser)."
  type        = string
  default     = null
}

variable "release_namespace" {
  description = "Kubernetes namespace of the operator release (its service account is the one attestation accepts)."
  type        = string
  default     = "cloudtaser-system"
}

variable "tokenreview_endpoint" {
  description = "The bridge's TokenReview Service as OpenBao reaches it (the bridge chart's NOTES print it). Null: the provider's default."
  type        = string
  default     = null
}

variable "tokenreview_ca_cert" {
  description = "PEM CA of the bridge listener's certificate, only when you bring it. Null: the listener CA kept in OpenBao."
  type        = string
  default     = null
}
