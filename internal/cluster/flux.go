package cluster

import (
	"fmt"
	"sort"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// KustomizationStatus is what a model needs of one Flux Kustomization.
type KustomizationStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Ready     string `json:"ready"` // True, False, Unknown
	Reason    string `json:"reason,omitempty"`
	Suspended bool   `json:"suspended"`
	Revision  string `json:"revision,omitempty"` // last applied
	Message   string `json:"message,omitempty"`
}

// Kustomizations summarises Flux Kustomizations in ns (all when empty):
// failing first, then suspended, then healthy, each by namespace/name.
func (c *Cache) Kustomizations(ns string) ([]KustomizationStatus, error) {
	l, err := c.fluxLister()
	if err != nil {
		return nil, err
	}
	var objs []runtime.Object
	if ns == "" {
		objs, err = l.List(labels.Everything())
	} else {
		objs, err = l.ByNamespace(ns).List(labels.Everything())
	}
	if err != nil {
		return nil, err
	}
	out := make([]KustomizationStatus, 0, len(objs))
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		var k kustomizev1.Kustomization
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &k); err != nil {
			return nil, fmt.Errorf("decode kustomization %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
		s := KustomizationStatus{Namespace: k.Namespace, Name: k.Name, Ready: "Unknown", Suspended: k.Spec.Suspend, Revision: k.Status.LastAppliedRevision}
		if cond := meta.FindStatusCondition(k.Status.Conditions, "Ready"); cond != nil {
			s.Ready, s.Reason, s.Message = string(cond.Status), cond.Reason, cond.Message
		}
		out = append(out, s)
	}
	rank := func(s KustomizationStatus) int {
		switch {
		case s.Ready == "False" && !s.Suspended:
			return 0
		case s.Suspended:
			return 1
		case s.Ready != "True":
			return 2
		}
		return 3
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank(a) != rank(b) {
			return rank(a) < rank(b)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}
