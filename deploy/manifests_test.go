package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/cluster-shepherd/shepherd/deploy"
)

// Every manifest in the directory is either applied by kustomization.yaml
// or the documented opt-in, so nothing ships unapplied by accident.
func TestKustomizationListsEveryManifest(t *testing.T) {
	listed, err := deploy.Files()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range onDisk {
		if f == "kustomization.yaml" || f == deploy.CustomResourcesExample {
			continue
		}
		if !slices.Contains(listed, f) {
			t.Errorf("%s is not listed in kustomization.yaml", f)
		}
	}
	for _, f := range listed {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", f, err)
		}
	}
	if _, err := deploy.Decode(deploy.CustomResourcesExample); err != nil {
		t.Error(err)
	}
}

func TestDeploymentSpec(t *testing.T) {
	objs, err := deploy.Objects()
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	found := false
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				t.Fatal(err)
			}
			found = true
		}
		if o.GetKind() != "Namespace" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" && o.GetNamespace() != deploy.Namespace {
			t.Errorf("%s %s is in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), deploy.Namespace)
		}
	}
	if !found {
		t.Fatal("no Deployment in the manifests")
	}
	ps := d.Spec.Template.Spec
	if ps.ServiceAccountName != deploy.ServiceAccount {
		t.Errorf("serviceAccountName %q", ps.ServiceAccountName)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	wantArgs := []string{"serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data", "--auth-token-file", "/etc/shepherd/token"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args %q, want %q", c.Args, wantArgs)
	}
	if c.Image != "shepherd:latest" {
		t.Errorf("image %q", c.Image)
	}
	var podNS *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "POD_NAMESPACE" {
			podNS = &c.Env[i]
		}
	}
	if podNS == nil || podNS.ValueFrom == nil || podNS.ValueFrom.FieldRef == nil || podNS.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE not from the downward API: %+v", podNS)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext not locked down: %+v", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v", c.ReadinessProbe)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	// The token is mounted from a Secret, never given as a value.
	mounted := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		mounted[v.Name] = v
	}
	tokenFromSecret := false
	for _, vm := range c.VolumeMounts {
		v := mounted[vm.Name]
		if vm.MountPath == "/etc/shepherd" && v.Secret != nil && vm.ReadOnly {
			tokenFromSecret = true
		}
		if vm.MountPath == "/data" && v.PersistentVolumeClaim == nil {
			t.Errorf("/data is not the PVC")
		}
	}
	if !tokenFromSecret {
		t.Error("/etc/shepherd is not a read-only Secret volume")
	}
	for _, e := range c.Env {
		if e.Value != "" && containsFold(e.Name, "TOKEN") {
			t.Errorf("env %s carries a literal token", e.Name)
		}
	}
}

// The namespace enforces the restricted Pod Security Standard and warns on
// workload templates; the API server said nothing about shepherd's.
func TestPodSecurityRestricted(t *testing.T) {
	for _, w := range applyWarnings.list() {
		t.Errorf("API server warning while applying the manifests: %s", w)
	}
	ns, err := admin.CoreV1().Namespaces().Get(t.Context(), deploy.Namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	// Admission checks a pod as the kubelet would run it: create one from
	// the template (as admin) in a dry run and expect no refusal.
	d, err := admin.AppsV1().Deployments(deploy.Namespace).Get(t.Context(), "shepherd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "psa-check", Namespace: deploy.Namespace}, Spec: d.Spec.Template.Spec}
	if _, err := admin.CoreV1().Pods(deploy.Namespace).Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("a pod from the Deployment's template is refused in namespace %s: %v", deploy.Namespace, err)
	}
	// And the check has teeth: a privileged variant is refused.
	bad := pod.DeepCopy()
	bad.Spec.Containers[0].SecurityContext.Privileged = new(true)
	if _, err := admin.CoreV1().Pods(deploy.Namespace).Create(t.Context(), bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Error("a privileged pod was admitted: Pod Security is not enforced in the namespace")
	}
}
