//go:build tools

// Package controlplane pins the kube-apiserver and etcd sources that tests
// build into a real control plane. It is its own module so that the main
// module's ./... never compiles Kubernetes.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
