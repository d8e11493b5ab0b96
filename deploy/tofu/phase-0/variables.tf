variable "cluster_name" {
  description = "Name of the kind cluster; kubectl's context becomes kind-<name>."
  type        = string
  default     = "spine"
}

variable "node_image" {
  description = "kind node image. Its Kubernetes minor matches the schemas the manifests are validated against (1.31)."
  type        = string
  default     = "kindest/node:v1.31.2"
}

variable "kubeconfig_path" {
  description = "Kubeconfig the cluster's context is merged into (and made current)."
  type        = string
  default     = "~/.kube/config"
}

variable "namespace" {
  description = "Namespace of the platform; must match deploy/k8s/base."
  type        = string
  default     = "platform"
}

variable "postgres_user" {
  description = "Postgres user the workloads connect as."
  type        = string
  default     = "platform"
}

variable "postgres_api_user" {
  description = "Postgres login role spine-api reads as (a read-only member of spine_reader)."
  type        = string
  default     = "spine_api"
}
