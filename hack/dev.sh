#!/usr/bin/env bash
# Builds shepherd and starts it against a local development cluster: a real
# kube-apiserver and etcd seeded with a broken home lab (crash loops, a pull
# error, a pending pod, a failing Kustomization, orphaned CRDs). MCP clients
# connect to http://127.0.0.1:8080/mcp (or /sse). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/install-control-plane.sh)}"
state=${DEV_STATE:-.dev}
mkdir -p "$state/data" bin
go build -o bin/shepherd ./cmd/shepherd
go build -o bin/devcluster ./hack/devcluster
kubeconfig="$state/kubeconfig"
rm -f "$kubeconfig"
bin/devcluster --kubeconfig-out "$kubeconfig" &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 180); do
  [ -s "$kubeconfig" ] && break
  kill -0 $dev 2>/dev/null || { echo "devcluster failed to start" >&2; exit 1; }
  sleep 1
done
bin/shepherd serve --kubeconfig "$kubeconfig" --listen "${LISTEN:-127.0.0.1:8080}" --data-dir "$state/data" "$@"
