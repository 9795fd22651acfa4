# This root module configures its providers from its variables, so call it from a root configuration (or apply it
# directly); to compose with count/for_each, use modules/registration and modules/operator and configure the
# providers yourself.

provider "cloudtaser" {
  secretstore_address = var.secretstore_address
}

provider "helm" {
  kubernetes = {
    config_path            = var.host == null ? var.kubeconfig_path : null
    config_context         = var.host == null ? var.kubeconfig_context : null
    host                   = var.host
    cluster_ca_certificate = var.cluster_ca_certificate
    token                  = var.exec == null ? var.token : null
    exec                   = var.exec
  }
}
