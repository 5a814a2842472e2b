#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing (Debian's
# PostgreSQL server, OpenSSH server and git; the Go modules; kube-apiserver
# and etcd built from source into ~/.cache), then go vet, go test ./... and a
# short, bounded run of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null 2>&1 || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go mod download
export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/install-control-plane.sh)}"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -count=1 -timeout 30m ./... "$@"

# Each fuzz target for a bounded number of executions on top of its committed
# corpus. Counts, not durations: a -fuzztime duration races the coordinator's
# deadline in Go 1.26 (golang/go#75804) and fails at random with "context
# deadline exceeded"; minimisation is bounded the same way.
fuzztime=${FUZZTIME:-200000x}
for pkg in $(go list ./... ); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1000x "$pkg"
  done
done
