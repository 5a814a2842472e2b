package cluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodProblem(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	cases := []struct {
		name   string
		pod    corev1.Pod
		reason string
	}{
		{"healthy", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: running, Ready: true}}}}, ""},
		{"completed job", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, ""},
		{"crash loop", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", RestartCount: 14, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}}, "CrashLoopBackOff"},
		{"crash loop from OOM", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", RestartCount: 5, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}}}, "OOMKilled"},
		{"pull error", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}}}}, "ImagePullBackOff"},
		{"init container stuck", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{
			Name: "migrate", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError"}}}}}}, "CreateContainerConfigError"},
		{"still creating", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}}, ""},
		{"unschedulable", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/3 nodes are available"}}}}, "Unschedulable"},
		{"evicted", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}}, "Evicted"},
		{"restarting", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 6, State: running}}}}, "Restarting"},
		{"not ready", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Message: "containers not ready"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: running}}}}, "NotReady"},
	}
	for _, c := range cases {
		if got, _ := podProblem(&c.pod); got != c.reason {
			t.Errorf("%s: got %q, want %q", c.name, got, c.reason)
		}
	}
}

func TestOOMDetailNamesTheLimit(t *testing.T) {
	p := &corev1.Pod{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 3,
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled"}}}}},
	}
	if _, d := podProblem(p); d != "container app OOMKilled, 3 restarts, memory limit 256Mi" {
		t.Fatalf("detail: %q", d)
	}
}

func TestWorkloadOf(t *testing.T) {
	owned := func(kind, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels, OwnerReferences: []metav1.OwnerReference{{Kind: kind, Name: name}}}}
	}
	cases := []struct {
		pod  *corev1.Pod
		want string
	}{
		{owned("ReplicaSet", "immich-5d4f8b7c9", map[string]string{"pod-template-hash": "5d4f8b7c9"}), "deployment/immich"},
		{owned("ReplicaSet", "orphan-rs", nil), "replicaset/orphan-rs"},
		{owned("StatefulSet", "postgres", nil), "statefulset/postgres"},
		{owned("DaemonSet", "node-exporter", nil), "daemonset/node-exporter"},
		{&corev1.Pod{}, ""},
	}
	for _, c := range cases {
		if got := workloadOf(c.pod); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestNormalizeKindAndDomain(t *testing.T) {
	for in, want := range map[string]string{"deploy": KindDeployment, "Deployment": KindDeployment, "sts": KindStatefulSet, " statefulsets ": KindStatefulSet, "DaemonSet": "", "": ""} {
		if got := NormalizeKind(in); got != want {
			t.Errorf("NormalizeKind(%q) = %q, want %q", in, got, want)
		}
	}
	for _, ok := range []string{"longhorn.io", "backup.longhorn.io"} {
		if err := ValidateDomain(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "io", "Longhorn.IO", "longhorn.io/", "*.io", "a..b"} {
		if err := ValidateDomain(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFoldConversionIssues(t *testing.T) {
	issues := []ConversionIssue{
		{CRD: "backuptargets.backup.longhorn.io", Group: "backup.longhorn.io", Service: "longhorn-system/longhorn-conversion-webhook", Error: "the webhook service does not exist"},
		{CRD: "engines.longhorn.io", Group: "longhorn.io", Service: "longhorn-system/longhorn-conversion-webhook", Error: "the webhook service does not exist"},
		{CRD: "volumes.longhorn.io", Group: "longhorn.io", Service: "longhorn-system/longhorn-conversion-webhook", Error: "the webhook service does not exist"},
		{CRD: "widgets.example.com", Group: "example.com", Error: "context deadline exceeded"},
	}
	got := foldConversionIssues(issues)
	if len(got) != 2 {
		t.Fatalf("want 2 alerts, got %+v", got)
	}
	want := "3 CRDs of backup.longhorn.io, longhorn.io cannot be listed (backuptargets.backup.longhorn.io, engines.longhorn.io, volumes.longhorn.io): the webhook service does not exist"
	if got[0].object != "webhook/longhorn-system/longhorn-conversion-webhook" || got[0].detail != want {
		t.Errorf("longhorn: %+v", got[0])
	}
	if got[1].object != "crd/widgets.example.com" || got[1].detail != "1 CRD of example.com cannot be listed (widgets.example.com): context deadline exceeded" {
		t.Errorf("no service: %+v", got[1])
	}
}
