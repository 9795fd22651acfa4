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
