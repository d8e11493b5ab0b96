output "kube_context" {
  description = "kubectl context of the cluster (already the current one)."
  value       = "kind-${kind_cluster.this.name}"
}

output "endpoint" {
  description = "Kubernetes API server of the cluster."
  value       = kind_cluster.this.endpoint
}

output "namespace" {
  description = "Namespace holding the platform."
  value       = kubernetes_namespace.platform.metadata[0].name
}

output "postgres_user" {
  description = "Postgres user in the postgres-credentials Secret."
  value       = var.postgres_user
}

output "postgres_password" {
  description = "Generated Postgres password (tofu output -raw postgres_password)."
  value       = random_password.postgres.result
  sensitive   = true
}

output "postgres_api_password" {
  description = "Generated password of the API's read-only role (tofu output -raw postgres_api_password)."
  value       = random_password.postgres_api.result
  sensitive   = true
}
