package cluster

import (
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// podIndex keeps the pods that have a problem, updated as the informer
// delivers changes, so that get_cluster_alerts looks at the handful of
// broken pods instead of every pod of the cluster on each call.
type podIndex struct {
	mu       sync.RWMutex
	problems map[string]*corev1.Pod // namespace/name → pod
	total    int
}

func newPodIndex(inf cache.SharedIndexInformer) (*podIndex, error) {
	ix := &podIndex{problems: map[string]*corev1.Pod{}}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				ix.mu.Lock()
				ix.total++
				ix.mu.Unlock()
				ix.update(p)
			}
		},
		UpdateFunc: func(_, obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				ix.update(p)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				ix.mu.Lock()
				ix.total--
				delete(ix.problems, p.Namespace+"/"+p.Name)
				ix.mu.Unlock()
			}
		},
	})
	return ix, err
}

func (ix *podIndex) update(p *corev1.Pod) {
	reason, _ := podProblem(p)
	key := p.Namespace + "/" + p.Name
	ix.mu.Lock()
	if reason == "" {
		delete(ix.problems, key)
	} else {
		ix.problems[key] = p
	}
	ix.mu.Unlock()
}

// list returns the problem pods in ns (all when empty), sorted by key so
// that answers are deterministic, and how many pods ns holds in all.
func (ix *podIndex) list(ns string) []*corev1.Pod {
	ix.mu.RLock()
	out := make([]*corev1.Pod, 0, len(ix.problems))
	for _, p := range ix.problems {
		if ns == "" || p.Namespace == ns {
			out = append(out, p)
		}
	}
	ix.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (ix *podIndex) count() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.total
}
