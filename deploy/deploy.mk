# Cluster targets, included by the root Makefile (`include deploy/deploy.mk`); run from the repo
# root. Each target's `## ` comment is its line in `make help`.
#
#   make phase-0                      kind cluster + namespace + postgres-credentials (OpenTofu)
#   make phase-1                      build the image, apply phase 0 + phase 1 (kustomize)
#   make tilt PHASE=phase-1-ingest    the same under Tilt, with port-forwards 8000 and 19092
#   make phase-1-down                 remove phase 1, keep phase 0 and the data volumes
#   make deploy-check                 render, schema-check and contract-test the manifests offline

KUBECTL ?= kubectl
# OpenTofu if installed, else Terraform: the module is plain HCL either reads.
TOFU ?= $(shell command -v tofu 2>/dev/null || command -v terraform 2>/dev/null || echo tofu)
TOFU_APPLY_FLAGS ?= -auto-approve
IMAGE ?= spine:dev
KIND_CLUSTER ?= spine
PHASE ?= phase-1-ingest
NAMESPACE := platform
TOFU_DIR := deploy/tofu/phase-0
PHASE1_DIR := deploy/k8s/overlays/phase-1-ingest
# What phase 1 adds on top of the base: removing these files' objects leaves phase 0 standing.
PHASE1_FILES := $(filter-out %/kustomization.yaml,$(wildcard $(PHASE1_DIR)/*.yaml))
# Where deploy-check finds the binaries whose --help it checks the manifests against.
SPINE_BIN_DIR ?= $(or $(CARGO_TARGET_DIR),target)/debug

.PHONY: phase-0 phase-0-down phase-1 phase-1-down tilt images deploy-check

phase-0: ## Create the kind cluster, namespace and postgres-credentials Secret (OpenTofu)
	$(TOFU) -chdir=$(TOFU_DIR) init -input=false
	$(TOFU) -chdir=$(TOFU_DIR) apply -input=false $(TOFU_APPLY_FLAGS)

phase-0-down: ## Destroy the kind cluster made by phase-0 (and everything in it)
	$(TOFU) -chdir=$(TOFU_DIR) destroy -input=false $(TOFU_APPLY_FLAGS)

phase-1: images ## Apply phase 0 + phase 1 to the current kube context and wait for it
	@for secret in postgres-credentials postgres-api-credentials; do \
	  $(KUBECTL) -n $(NAMESPACE) get secret $$secret >/dev/null 2>&1 || { \
	  echo "No Secret $$secret in namespace $(NAMESPACE) of context '$$($(KUBECTL) config current-context 2>/dev/null)'."; \
	  echo "Run 'make phase-0' first, or create it by hand (docs/deploy.md)."; exit 1; }; done
	@# kind nodes cannot see the host's Docker images: copy ours in.
	@ctx=$$($(KUBECTL) config current-context); case "$$ctx" in kind-*) \
	  echo "loading $(IMAGE) into kind cluster $${ctx#kind-}"; \
	  if command -v kind >/dev/null; then kind load docker-image $(IMAGE) --name "$${ctx#kind-}"; \
	  else docker save $(IMAGE) | docker exec -i "$${ctx#kind-}-control-plane" \
	         ctr --namespace=k8s.io images import --all-platforms -; fi ;; esac
	$(KUBECTL) apply -k $(PHASE1_DIR)
	@# A changed image keeps the tag spine:dev: restart so the pods pick the new build up.
	$(KUBECTL) -n $(NAMESPACE) rollout restart deployment/producer deployment/stream-processor deployment/api
	$(KUBECTL) -n $(NAMESPACE) rollout status statefulset/redpanda --timeout=180s
	$(KUBECTL) -n $(NAMESPACE) rollout status statefulset/postgres --timeout=180s
	$(KUBECTL) -n $(NAMESPACE) wait --for=condition=complete job/topic-init --timeout=300s
	$(KUBECTL) -n $(NAMESPACE) wait --for=condition=complete job/api-role --timeout=300s
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/stream-processor --timeout=180s
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/producer --timeout=180s
	$(KUBECTL) -n $(NAMESPACE) rollout status deployment/api --timeout=180s
	@echo "phase 1 is up: 'kubectl -n $(NAMESPACE) port-forward svc/api 8000:8000', then http://localhost:8000"

phase-1-down: ## Remove phase 1 (keeps phase 0 and the Redpanda/Postgres volumes)
	$(KUBECTL) -n $(NAMESPACE) delete --ignore-not-found $(addprefix -f ,$(PHASE1_FILES))
	@echo "data volumes kept; to wipe them: $(KUBECTL) -n $(NAMESPACE) delete pvc -l app.kubernetes.io/part-of=spine"

tilt: ## Run Tilt on an overlay (PHASE=phase-1-ingest): build, deploy, port-forward 8000 and 19092
	@command -v tilt >/dev/null || { echo "tilt is not installed: see https://docs.tilt.dev/install.html"; exit 1; }
	tilt up -f deploy/Tiltfile -- --phase $(PHASE)

images: ## Build the container image spine:dev holding all four binaries
	docker build -f deploy/Dockerfile -t $(IMAGE) .

deploy-check: ## Render every overlay, validate it against the Kubernetes 1.31 schemas, contract-test it
	cargo build --quiet --bins
	. scripts/env.sh && scripts/setup.sh pytools && \
	  SPINE_BIN_DIR=$(SPINE_BIN_DIR) "$$PYTOOLS/bin/python" deploy/test_manifests.py
