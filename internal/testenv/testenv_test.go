package testenv

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

var (
	env *Env
	sc  *Scenario
)

func TestMain(m *testing.M) { MainSeeded(m, &env, &sc) }

func clients(t *testing.T) (*kubernetes.Clientset, *dynamic.DynamicClient) {
	t.Helper()
	cs, err := env.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs, dyn
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStartupAndKubeconfig(t *testing.T) {
	t.Logf("control plane started in %s, seeded in %s (%d pods)", env.StartupTime, sc.SeedTime, sc.PodCount)
	cfg, err := clientcmd.BuildConfigFromFlags("", env.KubeconfigPath)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", env.KubeconfigPath, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version through kubeconfig: %v", err)
	}
	if v.GitVersion != KubernetesVersion {
		t.Errorf("server version %s, want %s", v.GitVersion, KubernetesVersion)
	}
	// The kubeconfig is an admin: it may read secrets.
	if _, err := cs.CoreV1().Secrets("default").List(ctx(t), metav1.ListOptions{}); err != nil {
		t.Errorf("admin kubeconfig cannot list secrets: %v", err)
	}
}

func TestMissingBinariesError(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", t.TempDir())
	_, err := Start(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "hack/install-control-plane.sh") {
		t.Fatalf("Start with empty assets dir: err = %v, want a hint naming hack/install-control-plane.sh", err)
	}
}

func TestHealthyWorkloads(t *testing.T) {
	cs, _ := clients(t)
	c := ctx(t)
	if len(sc.Deployments) != 40 {
		t.Errorf("healthy deployments = %d, want 40", len(sc.Deployments))
	}
	for _, nn := range [][2]string{{"immich", "immich"}, {"authentik", "authentik-server"}} {
		d, err := cs.AppsV1().Deployments(nn[0]).Get(c, nn[1], metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get deployment %s/%s: %v", nn[0], nn[1], err)
		}
		if d.Status.ReadyReplicas != *d.Spec.Replicas || d.Status.ReadyReplicas == 0 {
			t.Errorf("%s/%s ready %d of %d", nn[0], nn[1], d.Status.ReadyReplicas, *d.Spec.Replicas)
		}
		raw, _ := json.Marshal(d)
		d.ManagedFields = nil
		bare, _ := json.Marshal(d)
		t.Logf("%s/%s: %d bytes of JSON, %d without managedFields", nn[0], nn[1], len(raw), len(bare))
		if len(bare) < 4096 {
			t.Errorf("%s/%s is %d bytes of JSON, want a realistic 4+ KB", nn[0], nn[1], len(raw))
		}
		sel := metav1.FormatLabelSelector(d.Spec.Selector)
		pods, err := cs.CoreV1().Pods(nn[0]).List(c, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		if int32(len(pods.Items)) != *d.Spec.Replicas {
			t.Errorf("%s/%s has %d pods, want %d", nn[0], nn[1], len(pods.Items), *d.Spec.Replicas)
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || !podReady(&p) || p.Spec.NodeName == "" {
				t.Errorf("pod %s: phase %s ready %v node %q", p.Name, p.Status.Phase, podReady(&p), p.Spec.NodeName)
			}
		}
	}
	d, _ := cs.AppsV1().Deployments("immich").Get(c, "immich", metav1.GetOptions{})
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "ghcr.io/immich-app/immich-server:v1.119.0" {
		t.Errorf("immich image %s", got)
	}
	sts, err := cs.AppsV1().StatefulSets("immich").Get(c, "postgres", metav1.GetOptions{})
	if err != nil || sts.Status.ReadyReplicas != 1 {
		t.Errorf("statefulset immich/postgres: %v ready=%v", err, sts)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestProblemPods(t *testing.T) {
	cs, _ := clients(t)
	c := ctx(t)
	get := func(r PodRef) *corev1.Pod {
		t.Helper()
		p, err := cs.CoreV1().Pods(r.Namespace).Get(c, r.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get pod %s/%s: %v", r.Namespace, r.Name, err)
		}
		return p
	}
	crash := get(sc.CrashLoopPod).Status.ContainerStatuses[0]
	if crash.State.Waiting == nil || crash.State.Waiting.Reason != "CrashLoopBackOff" || crash.RestartCount != 14 ||
		crash.LastTerminationState.Terminated == nil || crash.LastTerminationState.Terminated.ExitCode != 1 || crash.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("crash-looping pod status: %+v", crash)
	}
	oom := get(sc.OOMKilledPod).Status.ContainerStatuses[0]
	if oom.LastTerminationState.Terminated == nil || oom.LastTerminationState.Terminated.Reason != "OOMKilled" || oom.RestartCount != 5 {
		t.Errorf("OOMKilled pod status: %+v", oom)
	}
	pull := get(sc.ImagePullPod).Status.ContainerStatuses[0]
	if pull.State.Waiting == nil || pull.State.Waiting.Reason != "ImagePullBackOff" ||
		pull.State.Waiting.Message != `Back-off pulling image "ghcr.io/example/app:v9.9.9-typo"` {
		t.Errorf("image pull pod status: %+v", pull)
	}
	pend := get(sc.PendingPod)
	if pend.Status.Phase != corev1.PodPending || pend.Spec.NodeName != "" || len(pend.Status.Conditions) != 1 ||
		pend.Status.Conditions[0].Reason != "Unschedulable" || pend.Status.Conditions[0].Message != "0/3 nodes are available: 3 Insufficient memory." {
		t.Errorf("pending pod: phase %s node %q conditions %+v", pend.Status.Phase, pend.Spec.NodeName, pend.Status.Conditions)
	}
	for _, nn := range sc.UnhealthyDeployments {
		d, err := cs.AppsV1().Deployments(nn.Namespace).Get(c, nn.Name, metav1.GetOptions{})
		if err != nil || d.Status.ReadyReplicas != 0 || d.Status.UnavailableReplicas != 1 {
			t.Errorf("unhealthy deployment %s: %v %+v", nn, err, d.Status)
		}
	}
}

func TestWarningEvents(t *testing.T) {
	cs, _ := clients(t)
	c := ctx(t)
	evs, err := cs.CoreV1().Events("").List(c, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("type", corev1.EventTypeWarning).String()})
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ ns, name, reason string }
	objects := map[key]int{}
	counts := map[key]int32{}
	for _, e := range evs.Items {
		if e.Type != corev1.EventTypeWarning {
			t.Errorf("field selector type=Warning returned a %s event", e.Type)
		}
		k := key{e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.Reason}
		objects[k]++
		counts[k] += e.Count
	}
	crash := key{sc.CrashLoopPod.Namespace, sc.CrashLoopPod.Name, "BackOff"}
	if objects[crash] != 3 || counts[crash] != 42+12+3 {
		t.Errorf("BackOff for %s: %d objects, count %d; want 3 objects, 57", sc.CrashLoopPod.Name, objects[crash], counts[crash])
	}
	for _, k := range []key{
		{sc.PendingPod.Namespace, sc.PendingPod.Name, "FailedScheduling"},
		{sc.ImagePullPod.Namespace, sc.ImagePullPod.Name, "Failed"},
		{sc.FailingKustomization.Namespace, sc.FailingKustomization.Name, "ReconciliationFailed"},
		{"", sc.MemoryPressureNode, "EvictionThresholdMet"},
	} {
		if objects[k] == 0 {
			t.Errorf("no Warning event %+v", k)
		}
	}
	if objects[key{sc.ImagePullPod.Namespace, sc.ImagePullPod.Name, "Failed"}] != 3 {
		t.Errorf("want 3 Failed events for the image pull pod, got %d", objects[key{sc.ImagePullPod.Namespace, sc.ImagePullPod.Name, "Failed"}])
	}
	all, err := cs.CoreV1().Events("").List(c, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) <= len(evs.Items) {
		t.Errorf("no Normal events among %d", len(all.Items))
	}
}

func TestKustomizations(t *testing.T) {
	_, dyn := clients(t)
	list, err := dyn.Resource(KustomizationGVR).Namespace("flux-system").List(ctx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(sc.Kustomizations) || len(list.Items) < 5 {
		t.Fatalf("%d kustomizations, scenario says %d", len(list.Items), len(sc.Kustomizations))
	}
	ready := func(u *unstructured.Unstructured) (status, reason, msg string) {
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m := c.(map[string]any)
			if m["type"] == "Ready" {
				return m["status"].(string), m["reason"].(string), m["message"].(string)
			}
		}
		return "", "", ""
	}
	healthy := 0
	for i := range list.Items {
		u := &list.Items[i]
		st, reason, msg := ready(u)
		suspended, _, _ := unstructured.NestedBool(u.Object, "spec", "suspend")
		rev, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedRevision")
		switch u.GetName() {
		case sc.FailingKustomization.Name:
			if st != "False" || reason != "BuildFailed" || msg != sc.FailingMessage || len(msg) < 300 {
				t.Errorf("failing kustomization: %s %s %q", st, reason, msg)
			}
		case sc.SuspendedKustomization.Name:
			if !suspended {
				t.Errorf("%s not suspended", u.GetName())
			}
		default:
			if st == "True" && !suspended && strings.HasPrefix(rev, "main@sha1:") {
				healthy++
			}
		}
	}
	if healthy < 5 {
		t.Errorf("%d healthy kustomizations, want at least 5", healthy)
	}
}

func TestNodes(t *testing.T) {
	cs, _ := clients(t)
	nodes, err := cs.CoreV1().Nodes().List(ctx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 3 {
		t.Fatalf("%d nodes", len(nodes.Items))
	}
	pressure := 0
	for _, n := range nodes.Items {
		if n.Status.NodeInfo.KubeletVersion == "" || len(n.Status.Addresses) == 0 {
			t.Errorf("node %s lacks kubelet version or addresses", n.Name)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
				t.Errorf("node %s not Ready", n.Name)
			}
			if c.Type == corev1.NodeMemoryPressure && c.Status == corev1.ConditionTrue {
				pressure++
				if n.Name != sc.MemoryPressureNode {
					t.Errorf("memory pressure on %s, scenario says %s", n.Name, sc.MemoryPressureNode)
				}
			}
		}
	}
	if pressure != 1 {
		t.Errorf("%d nodes under memory pressure, want 1", pressure)
	}
	cp, _ := cs.CoreV1().Nodes().Get(ctx(t), NodeControlPlane, metav1.GetOptions{})
	if _, ok := cp.Labels["node-role.kubernetes.io/control-plane"]; !ok {
		t.Errorf("%s lacks the control-plane role label", NodeControlPlane)
	}
}

// TestOrphanedCRDConversion proves the scenario's point: reading at the
// non-storage version goes through the missing webhook and fails.
func TestOrphanedCRDConversion(t *testing.T) {
	_, dyn := clients(t)
	c := ctx(t)
	v2 := schema.GroupVersionResource{Group: OrphanGroup, Version: "v1beta2", Resource: "volumes"}
	list, err := dyn.Resource(v2).Namespace("").List(c, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list volumes at storage version v1beta2: %v", err)
	}
	if len(list.Items) != sc.CustomResources["volumes.longhorn.io"] {
		t.Errorf("%d volumes, want %d", len(list.Items), sc.CustomResources["volumes.longhorn.io"])
	}
	v1 := v2
	v1.Version = "v1beta1"
	_, err = dyn.Resource(v1).Namespace("").List(c, metav1.ListOptions{})
	if err == nil {
		t.Fatal("listing volumes at v1beta1 succeeded; want the conversion webhook error")
	}
	t.Logf("list at v1beta1: %v (status %d)", err, statusCode(err))
	if !strings.Contains(err.Error(), "conversion webhook") || !strings.Contains(err.Error(), "longhorn-conversion-webhook") {
		t.Errorf("unexpected error text: %v", err)
	}
	if len(sc.CRDs) != 4 || sc.UnrelatedCRD != "tunnels.notlonghorn.io" {
		t.Errorf("scenario CRDs %v, unrelated %q", sc.CRDs, sc.UnrelatedCRD)
	}
}

func statusCode(err error) int32 {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status().Code
	}
	return 0
}

func TestPodLogsThroughAPIServer(t *testing.T) {
	cs, _ := clients(t)
	c := ctx(t)
	read := func(r PodRef, opts *corev1.PodLogOptions) (string, error) {
		opts.Container = r.Container
		rc, err := cs.CoreV1().Pods(r.Namespace).GetLogs(r.Name, opts).Stream(c)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	out, err := read(sc.LogPod, &corev1.PodLogOptions{})
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", sc.LogPod.Namespace, sc.LogPod.Name, err)
	}
	if !strings.Contains(out, "Immich Server is listening") || !strings.Contains(out, secretPGPass) {
		t.Errorf("immich log:\n%s", out)
	}
	out, err = read(sc.LogPod, &corev1.PodLogOptions{TailLines: ptr.To(int64(2))})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n != 2 || !strings.HasSuffix(out, "[PRODUCTION]\n") {
		t.Errorf("tailLines=2 gave %d lines:\n%s", n, out)
	}
	prev, err := read(sc.CrashLoopPod, &corev1.PodLogOptions{Previous: true})
	if err != nil {
		t.Fatalf("previous logs of crash-looping pod: %v", err)
	}
	if !strings.Contains(prev, "stack traceback") && !strings.Contains(prev, "trace:") {
		t.Errorf("previous log has no crash stack:\n%s", prev)
	}
	cur, err := read(sc.CrashLoopPod, &corev1.PodLogOptions{})
	if err != nil || cur == prev {
		t.Errorf("current log of crash-looping pod: err %v, same as previous %v", err, cur == prev)
	}
	// A healthy pod has no previous container: the kubelet's 400 comes back
	// through the API server as an error.
	_, err = read(sc.LogPod, &corev1.PodLogOptions{Previous: true})
	if err == nil {
		t.Error("previous logs of a never-restarted pod succeeded")
	} else {
		t.Logf("previous of healthy pod: %v (status %d)", err, statusCode(err))
	}
	// The API server answers an empty log for a pod bound to no node.
	if out, err := read(sc.PendingPod, &corev1.PodLogOptions{}); err != nil || out != "" {
		t.Errorf("logs of a pending pod: %q, %v; want empty, no error", out, err)
	}
	_, err = read(sc.ImagePullPod, &corev1.PodLogOptions{})
	if err == nil || !strings.Contains(err.Error(), "is waiting to start") {
		t.Errorf("logs of the image-pull pod: %v, want \"is waiting to start\"", err)
	} else {
		t.Logf("logs of image-pull pod: %v (status %d)", err, statusCode(err))
	}
	secrets := 0
	for _, r := range []PodRef{sc.LogPod, sc.CrashLoopPod} {
		out, _ := read(r, &corev1.PodLogOptions{})
		for _, s := range sc.SecretValues {
			if strings.Contains(out, s) {
				secrets++
			}
		}
	}
	if secrets < 2 {
		t.Errorf("seeded logs carry %d secret values, want them present to test redaction", secrets)
	}
}

func TestLogServerDirect(t *testing.T) {
	ls, err := StartLogServer(map[string][]string{
		LogKey("ns", "p", "c", false): {"a", "b", "c"},
		LogKey("ns", "p", "c", true):  {"old"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	cl := ls.client()
	get := func(path string) (int, string) {
		resp, err := cl.Get("https://" + ls.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/containerLogs/ns/p/c", 200, "a\nb\nc\n"},
		{"/containerLogs/ns/p/c?tailLines=1", 200, "c\n"},
		{"/containerLogs/ns/p/c?tailLines=0", 200, ""},
		{"/containerLogs/ns/p/c?previous=true", 200, "old\n"},
		{"/containerLogs/ns/p/c?limitBytes=3", 200, "a\nb"},
		{"/containerLogs/ns/p/other", 404, "container \"other\" not found in pod \"p\""},
		{"/containerLogs/ns/nope/c", 404, "pod \"nope\" does not exist"},
		{"/containerLogs/ns/p/c?tailLines=x", 400, "invalid tailLines \"x\""},
	} {
		code, body := get(tc.path)
		if code != tc.code || body != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
	ls2, _ := StartLogServer(map[string][]string{LogKey("ns", "p", "c", false): {"x"}})
	defer ls2.Close()
	if code, body := get2(t, ls2, "/containerLogs/ns/p/c?previous=true"); code != 400 || !strings.Contains(body, "previous terminated container") {
		t.Errorf("previous without one: %d %q", code, body)
	}
}

func get2(t *testing.T, ls *LogServer, path string) (int, string) {
	resp, err := ls.client().Get("https://" + ls.Addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSeedRejectsBadOptions(t *testing.T) {
	if _, err := Seed(ctx(t), env.Config, SeedOptions{Deployments: -1}); err == nil {
		t.Error("negative Deployments accepted")
	}
}

func ExampleLogKey() {
	fmt.Println(LogKey("mail", "rspamd-0", "rspamd", true))
	// Output: mail/rspamd-0/rspamd#previous
}

// client trusts the log server's self-signed certificate, as the API server
// does when no --kubelet-certificate-authority is set.
func (s *LogServer) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test of a self-signed stand-in
}
