variable "fingerprint" {
  description = "The cluster's fingerprint (UID of its kube-system namespace). Leave null to read it with the connection variables below."
  type        = string
  default     = null
}

variable "kubeconfig_path" {
  description = "Kubeconfig to read the fingerprint with (when fingerprint is null and host is null)."
  type        = string
  default     = null
}

variable "kubeconfig_context" {
  description = "Kubeconfig context to use instead of the current one."
  type        = string
  default     = null
}

variable "host" {
  description = "Kubernetes API server URL, used with token or exec instead of a kubeconfig."
  type        = string
  default     = null
}

variable "token" {
  description = "Bearer token for host. Prefer exec: a token given here is stored in the plan."
  type        = string
  default     = null
  sensitive   = true
}

variable "cluster_ca_certificate" {
  description = "PEM CA certificate of the API server (not base64)."
  type        = string
  default     = null
}

variable "exec" {
  description = "Credential plugin for host, e.g. { api_version = \"client.authentication.k8s.io/v1beta1\", command = \"gke-gcloud-auth-plugin\", args = [] }."
  type = object({
    api_version = string
    command     = string
    args        = optional(list(string), [])
    env         = optional(map(string), {})
  })
  default = null
}

variable "purge_on_destroy" {
  description = "Also delete the cluster's OpenBao namespace and its workload secrets on destroy."
  type        = bool
  default     = false
}

variable "attestation" {
  description = "Require an attested bootstrap: the operator proves it runs as attestation_service_account in this cluster with a service-account token, so a restarted operator bootstraps again on its own and a stolen fingerprint is useless. The issuer and keys are read through the connection above unless given below."
  type        = bool
  default     = true
}

variable "attestation_issuer" {
  description = "The cluster's service-account issuer, when it cannot be read through the connection (e.g. fingerprint given)."
  type        = string
  default     = null
}

variable "attestation_jwks" {
  description = "The cluster's /openid/v1/jwks as JSON text, with attestation_issuer."
  type        = string
  default     = null
}

variable "attestation_service_account" {
  description = "namespace/name of the operator's service account. Null: the provider's default (cloudtaser-system/cloudtaser)."
  type        = string
  default     = null
}

variable "tokenreview_endpoint" {
  description = "The bridge's TokenReview Service as OpenBao reaches it, e.g. https://cloudtaser-bridge.openbao.svc:8444 (the bridge chart's NOTES print it). Null: the provider's default (the bridge chart's defaults)."
  type        = string
  default     = null
}

variable "tokenreview_ca_cert" {
  description = "PEM CA of the bridge listener's certificate, only when you bring it (bridge.tokenReview.tls.secretName). Null: the listener CA registration keeps in OpenBao."
  type        = string
  default     = null
}
