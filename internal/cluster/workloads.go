package cluster

import (
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// WorkloadSummary is the ~100 bytes of a Deployment or StatefulSet a model
// needs: where it is, what it is, whether it is ready, what it runs.
type WorkloadSummary struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	Ready     string   `json:"ready"`
	Images    []string `json:"images"`
}

// Workloads lists Deployments and StatefulSets in ns (all when empty),
// sorted by namespace, kind and name.
func (c *Cache) Workloads(ns string) ([]WorkloadSummary, error) {
	var deps []*appsv1.Deployment
	var sts []*appsv1.StatefulSet
	var err error
	if ns == "" {
		deps, err = c.Deployments.List(labels.Everything())
	} else {
		deps, err = c.Deployments.Deployments(ns).List(labels.Everything())
	}
	if err != nil {
		return nil, err
	}
	if ns == "" {
		sts, err = c.StatefulSet.List(labels.Everything())
	} else {
		sts, err = c.StatefulSet.StatefulSets(ns).List(labels.Everything())
	}
	if err != nil {
		return nil, err
	}
	out := make([]WorkloadSummary, 0, len(deps)+len(sts))
	for _, d := range deps {
		out = append(out, WorkloadSummary{
			Namespace: d.Namespace, Name: d.Name, Kind: "Deployment",
			Ready:  fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, replicas(d.Spec.Replicas)),
			Images: images(d.Spec.Template.Spec),
		})
	}
	for _, s := range sts {
		out = append(out, WorkloadSummary{
			Namespace: s.Namespace, Name: s.Name, Kind: "StatefulSet",
			Ready:  fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, replicas(s.Spec.Replicas)),
			Images: images(s.Spec.Template.Spec),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return out, nil
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1 // the API's default
	}
	return *p
}

func images(spec corev1.PodSpec) []string {
	out := make([]string, 0, len(spec.Containers))
	for _, c := range spec.Containers {
		out = append(out, c.Image)
	}
	return out
}
