terraform {
  required_version = ">= 1.5"
  required_providers {
    cloudtaser = {
      source  = "cloudtaser/cloudtaser"
      version = "~> 0.2.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
  }
}
