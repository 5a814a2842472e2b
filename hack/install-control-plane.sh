#!/usr/bin/env bash
# Builds kube-apiserver and etcd from Go source (nothing else can be fetched
# here) into a versioned cache directory and prints that directory. A second
# run with the binaries present takes no time.
set -euo pipefail
K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
here=$(cd "$(dirname "$0")" && pwd)
out=${SHEPHERD_ASSETS_DIR:-$HOME/.cache/cluster-shepherd/k8s-$K8S_VERSION-etcd-$ETCD_VERSION}
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
cd "$here/controlplane"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
echo "building kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION into $out (about 6 minutes on a cold cache)" >&2
go build -trimpath -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
  -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$out/etcd.tmp" "$out/etcd"
mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
echo "$out"
