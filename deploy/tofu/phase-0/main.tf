# Phase 0: an empty but ready cluster — a local kind cluster, the platform namespace, and the
# generated Postgres credentials. Everything else is kustomize (deploy/k8s).

resource "kind_cluster" "this" {
  name            = var.cluster_name
  node_image      = var.node_image
  kubeconfig_path = pathexpand(var.kubeconfig_path)
  wait_for_ready  = true

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"

    node {
      role = "control-plane"
    }
  }
}

# Talks to the cluster made above, with the credentials kind generated for it.
provider "kubernetes" {
  host                   = kind_cluster.this.endpoint
  cluster_ca_certificate = kind_cluster.this.cluster_ca_certificate
  client_certificate     = kind_cluster.this.client_certificate
  client_key             = kind_cluster.this.client_key
}

# Created here because the Secret below must live in it. The kustomize base declares the same
# namespace; `kubectl apply -k` then adopts this one. Its labels are the ones kustomize renders
# for it, so neither tool sees drift and undoes the other (kubectl's own annotation is in the
# kubernetes.io domain, which this provider ignores).
resource "kubernetes_namespace" "platform" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of" = "spine"
    }
  }
}

# Generated, never committed: the password exists only in the cluster and in the tofu state.
resource "random_password" "postgres" {
  length  = 32
  special = false # it ends up in connection strings; letters and digits need no escaping
}

# Read by the postgres StatefulSet and by the processor and api Deployments (secretKeyRef), under
# exactly these two keys.
resource "kubernetes_secret" "postgres_credentials" {
  metadata {
    name      = "postgres-credentials"
    namespace = kubernetes_namespace.platform.metadata[0].name
  }

  data = {
    POSTGRES_USER     = var.postgres_user
    POSTGRES_PASSWORD = random_password.postgres.result
  }

  type = "Opaque"
}

# The API's own read-only role: a password of its own, in a Secret of its own that only the api
# Deployment and the api-role Job (which creates the role) read. The API never receives the
# writer's postgres-credentials.
resource "random_password" "postgres_api" {
  length  = 32
  special = false
}

resource "kubernetes_secret" "postgres_api_credentials" {
  metadata {
    name      = "postgres-api-credentials"
    namespace = kubernetes_namespace.platform.metadata[0].name
  }

  data = {
    POSTGRES_API_USER     = var.postgres_api_user
    POSTGRES_API_PASSWORD = random_password.postgres_api.result
  }

  type = "Opaque"
}
