variable "beacon_address" {
  description = "The beacon the operator dials: host:port or wss://host[:port]."
  type        = string

  validation {
    condition     = can(regex("^(wss://([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\])(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/\\S*)?|([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))$", var.beacon_address))
    error_message = "beacon_address must be the beacon's host:port (e.g. beacon.example.com:443, port 1 to 65535) or wss://host[:port]."
  }
}

variable "ca_sha256" {
  description = "The registration's operational_hash: the operator accepts only this cluster CA at first contact."
  type        = string
}

variable "attestation" {
  description = "Run the broker with attested bootstrap; set it to the registration's attested output."
  type        = bool
  default     = false
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

variable "release_namespace" {
  description = "Kubernetes namespace of the operator."
  type        = string
  default     = "cloudtaser-system"
}

variable "values" {
  description = "Extra chart values (never secrets: they are stored in state)."
  type        = any
  default     = {}
}
