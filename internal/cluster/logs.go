package cluster

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// MaxLogLines is the most log lines one call may return.
const MaxLogLines = 200

// PodLogs holds the tail of one container's log.
type PodLogs struct {
	Container string
	Others    []string // the pod's other containers
	Lines     []string
}

// ErrNotFound wraps lookups of objects that do not exist.
type ErrNotFound struct{ What string }

func (e *ErrNotFound) Error() string { return e.What + " not found" }

// Logs returns the last lines of a container's log through the API server's
// pods/log subresource. container defaults to the pod's first container.
func (c *Cache) Logs(ctx context.Context, ns, pod, container string, lines int, previous bool) (PodLogs, error) {
	var out PodLogs
	if lines <= 0 || lines > MaxLogLines {
		return out, fmt.Errorf("lines must be between 1 and %d", MaxLogLines)
	}
	p, err := c.Pods.Pods(ns).Get(pod)
	if err != nil {
		if apierrors.IsNotFound(err) {
			if !c.NamespaceExists(ns) {
				return out, &ErrNotFound{What: fmt.Sprintf("namespace %q", ns)}
			}
			return out, &ErrNotFound{What: fmt.Sprintf("pod %s/%s", ns, pod)}
		}
		return out, err
	}
	names := containerNames(p)
	if container == "" {
		container = names[0]
	} else if !contains(names, container) {
		return out, &ErrNotFound{What: fmt.Sprintf("container %q in pod %s/%s (containers: %s)", container, ns, pod, strings.Join(names, ", "))}
	}
	for _, n := range names {
		if n != container {
			out.Others = append(out.Others, n)
		}
	}
	out.Container = container
	if previous && !hasPrevious(p, container) {
		return out, &ErrNotFound{What: fmt.Sprintf("previous logs of container %q in pod %s/%s: it has not terminated or restarted yet; ask for the current logs", container, ns, pod)}
	}
	tail := int64(lines)
	req := c.client.Kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail, Previous: previous})
	rc, err := req.Stream(ctx)
	if err != nil {
		return out, fmt.Errorf("logs of %s/%s container %s: %w", ns, pod, container, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out.Lines = append(out.Lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read logs of %s/%s: %w", ns, pod, err)
	}
	// The kubelet honours tailLines, but a stand-in or proxy may not.
	if len(out.Lines) > lines {
		out.Lines = out.Lines[len(out.Lines)-lines:]
	}
	return out, nil
}

func containerNames(p *corev1.Pod) []string {
	var names []string
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range p.Spec.InitContainers {
		names = append(names, c.Name)
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hasPrevious reports whether the kubelet may still hold logs of an
// earlier run of container: it restarted or its last run terminated.
func hasPrevious(p *corev1.Pod, container string) bool {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, cs := range list {
			if cs.Name == container {
				return cs.RestartCount > 0 || cs.LastTerminationState.Terminated != nil
			}
		}
	}
	return true // no status yet: let the kubelet answer
}
