package deploy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cluster-shepherd/shepherd/deploy"
	"github.com/cluster-shepherd/shepherd/internal/cluster"
)

func saKube(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func saDynamic(t *testing.T) *dynamic.DynamicClient {
	t.Helper()
	d, err := dynamic.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// refusals are real API calls the ServiceAccount must not be able to make.
func refusals(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, ext apiextclient.Interface) []struct {
	name string
	call func(ctx context.Context) error
} {
	sc := scenario
	lp := sc.LogPod
	d := sc.Deployments[0]
	mp := func(s string) []byte { return []byte(s) }
	anyCRD := sc.UnrelatedCRD
	return []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"get secret", func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "anything", metav1.GetOptions{})
			return err
		}},
		{"list secrets (all namespaces)", func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list secrets in own namespace", func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(deploy.Namespace).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"watch secrets", func(ctx context.Context) error {
			w, err := cs.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"patch secret", func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(deploy.Namespace).Patch(ctx, "shepherd-auth", types.MergePatchType, mp(`{"data":{"x":"eA=="}}`), metav1.PatchOptions{})
			return err
		}},
		{"create secret", func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(deploy.Namespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"exec in pod (create pods/exec)", func(ctx context.Context) error {
			return cs.CoreV1().RESTClient().Post().Namespace(lp.Namespace).Resource("pods").Name(lp.Name).SubResource("exec").
				Param("command", "sh").Param("stdout", "true").Param("container", lp.Container).Do(ctx).Error()
		}},
		{"attach to pod (create pods/attach)", func(ctx context.Context) error {
			return cs.CoreV1().RESTClient().Post().Namespace(lp.Namespace).Resource("pods").Name(lp.Name).SubResource("attach").
				Param("stdout", "true").Do(ctx).Error()
		}},
		{"port-forward (create pods/portforward)", func(ctx context.Context) error {
			return cs.CoreV1().RESTClient().Post().Namespace(lp.Namespace).Resource("pods").Name(lp.Name).SubResource("portforward").Do(ctx).Error()
		}},
		{"kubelet API (get nodes/proxy)", func(ctx context.Context) error {
			return cs.CoreV1().RESTClient().Get().Resource("nodes").Name(sc.Nodes[0]).SubResource("proxy", "pods").Do(ctx).Error()
		}},
		{"delete pod", func(ctx context.Context) error {
			return cs.CoreV1().Pods(lp.Namespace).Delete(ctx, lp.Name, metav1.DeleteOptions{})
		}},
		{"delete all pods of a namespace", func(ctx context.Context) error {
			return cs.CoreV1().Pods(lp.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		}},
		{"evict pod", func(ctx context.Context) error {
			return cs.PolicyV1().Evictions(lp.Namespace).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: lp.Name, Namespace: lp.Namespace}})
		}},
		{"create namespace", func(ctx context.Context) error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "evil"}}, metav1.CreateOptions{})
			return err
		}},
		{"delete namespace", func(ctx context.Context) error {
			return cs.CoreV1().Namespaces().Delete(ctx, lp.Namespace, metav1.DeleteOptions{})
		}},
		{"create pod", func(ctx context.Context) error {
			_, err := cs.CoreV1().Pods(lp.Namespace).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{})
			return err
		}},
		{"create deployment", func(ctx context.Context) error {
			_, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"create configmap", func(ctx context.Context) error {
			_, err := cs.CoreV1().ConfigMaps(d.Namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"patch configmap", func(ctx context.Context) error {
			_, err := cs.CoreV1().ConfigMaps("kube-system").Patch(ctx, "extension-apiserver-authentication", types.MergePatchType, mp(`{"data":{"x":"y"}}`), metav1.PatchOptions{})
			return err
		}},
		{"create service", func(ctx context.Context) error {
			_, err := cs.CoreV1().Services(d.Namespace).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"create event", func(ctx context.Context) error {
			_, err := cs.CoreV1().Events(d.Namespace).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"mint a token (create serviceaccounts/token)", func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts(deploy.Namespace).CreateToken(ctx, deploy.ServiceAccount, &authnv1.TokenRequest{}, metav1.CreateOptions{})
			return err
		}},
		{"delete deployment", func(ctx context.Context) error {
			return cs.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{})
		}},
		{"update (PUT) deployment", func(ctx context.Context) error {
			got, err := admin.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("admin get: %w", err)
			}
			_, err = cs.AppsV1().Deployments(d.Namespace).Update(ctx, got, metav1.UpdateOptions{})
			return err
		}},
		{"delete statefulset", func(ctx context.Context) error {
			s := sc.StatefulSets[0]
			return cs.AppsV1().StatefulSets(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
		}},
		{"patch daemonset", func(ctx context.Context) error {
			_, err := cs.AppsV1().DaemonSets("kube-system").Patch(ctx, "x", types.MergePatchType, mp(`{}`), metav1.PatchOptions{})
			return err
		}},
		{"patch node", func(ctx context.Context) error {
			_, err := cs.CoreV1().Nodes().Patch(ctx, sc.Nodes[0], types.MergePatchType, mp(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
			return err
		}},
		{"update node", func(ctx context.Context) error {
			n, err := admin.CoreV1().Nodes().Get(ctx, sc.Nodes[0], metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("admin get: %w", err)
			}
			_, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		}},
		{"patch node status", func(ctx context.Context) error {
			_, err := cs.CoreV1().Nodes().Patch(ctx, sc.Nodes[0], types.MergePatchType, mp(`{"status":{}}`), metav1.PatchOptions{}, "status")
			return err
		}},
		{"patch pod", func(ctx context.Context) error {
			_, err := cs.CoreV1().Pods(lp.Namespace).Patch(ctx, lp.Name, types.MergePatchType, mp(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"create CRD", func(ctx context.Context) error {
			_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &apiextv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "xs.evil.io"}}, metav1.CreateOptions{})
			return err
		}},
		{"update CRD", func(ctx context.Context) error {
			got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, anyCRD, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get (allowed) CRD: %w", err)
			}
			_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, got, metav1.UpdateOptions{})
			return err
		}},
		{"patch CRD", func(ctx context.Context) error {
			_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Patch(ctx, anyCRD, types.MergePatchType, mp(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"create custom resource", func(ctx context.Context) error {
			gvr := schema.GroupVersionResource{Group: "notlonghorn.io", Version: "v1beta2", Resource: "tunnels"}
			_, err := dyn.Resource(gvr).Namespace("default").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "notlonghorn.io/v1beta2", "kind": "Tunnel", "metadata": map[string]any{"name": "x"}}}, metav1.CreateOptions{})
			return err
		}},
		{"create Kustomization", func(ctx context.Context) error {
			_, err := dyn.Resource(cluster.KustomizationGVR).Namespace("flux-system").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": map[string]any{"name": "x"}}}, metav1.CreateOptions{})
			return err
		}},
		{"delete Kustomization", func(ctx context.Context) error {
			k := sc.Kustomizations[0]
			return dyn.Resource(cluster.KustomizationGVR).Namespace(k.Namespace).Delete(ctx, k.Name, metav1.DeleteOptions{})
		}},
		{"create clusterrolebinding", func(ctx context.Context) error {
			_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "x"},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: deploy.ServiceAccount, Namespace: deploy.Namespace}}}, metav1.CreateOptions{})
			return err
		}},
		{"widen own clusterrole", func(ctx context.Context) error {
			_, err := cs.RbacV1().ClusterRoles().Patch(ctx, "shepherd", types.JSONPatchType,
				mp(`[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]`), metav1.PatchOptions{})
			return err
		}},
		{"list clusterroles", func(ctx context.Context) error {
			_, err := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list services", func(ctx context.Context) error {
			_, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list serviceaccounts", func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{})
			return err
		}},
	}
}

// The ServiceAccount is refused everything else; each case is a real call
// whose answer must be 403 Forbidden (not NotFound, not a validation error,
// which would mean authorization had let it through).
func TestServiceAccountIsRefused(t *testing.T) {
	cs := saKube(t)
	ext, err := apiextclient.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refusals(t, cs, saDynamic(t), ext) {
		t.Run(r.name, func(t *testing.T) {
			err := r.call(contextFor(t, 30*time.Second))
			// Admission can answer Forbidden too; only the authorizer's
			// refusal names the user and what it cannot do.
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "`+deploy.Username+`" cannot`) {
				t.Fatalf("want Forbidden by RBAC, got %v", err)
			}
		})
	}
}

// A real ServiceAccount token (TokenRequest, as the kubelet mounts it)
// authenticates as shepherd and gets the same answers as impersonation;
// with it shepherd cannot impersonate anyone either.
func TestRealServiceAccountToken(t *testing.T) {
	ctx := contextFor(t, time.Minute)
	tr, err := admin.CoreV1().ServiceAccounts(deploy.Namespace).CreateToken(ctx, deploy.ServiceAccount,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	who, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if who.Status.UserInfo.Username != deploy.Username {
		t.Fatalf("token authenticates as %q, want %q", who.Status.UserInfo.Username, deploy.Username)
	}
	if _, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		t.Errorf("list pods with the token: %v", err)
	}
	if _, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{Limit: 1}); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets with the token: want Forbidden, got %v", err)
	}
	for _, imp := range []rest.ImpersonationConfig{
		{UserName: "admin", Groups: []string{"system:masters"}},
		{UserName: "system:serviceaccount:kube-system:default"},
		{UserName: deploy.Username, Groups: []string{"system:masters"}},
	} {
		ic := rest.CopyConfig(cfg)
		ic.Impersonate = imp
		ics, err := kubernetes.NewForConfig(ic)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ics.CoreV1().Secrets("").List(ctx, metav1.ListOptions{Limit: 1}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "impersonate") {
			t.Errorf("impersonating %+v: want Forbidden to impersonate, got %v", imp, err)
		}
	}
}

// access is one row of the SubjectAccessReview table.
type access struct {
	verb, group, resource, sub, ns string
	allowed                        bool
}

// The API server's own verdict on a readable table of what shepherd may do;
// it must match the role's intent row by row.
func TestAccessReviewTable(t *testing.T) {
	ctx := contextFor(t, time.Minute)
	rows := []access{
		{"list", "", "pods", "", "", true},
		{"watch", "", "pods", "", "", true},
		{"get", "", "pods", "log", "media", true},
		{"list", "", "nodes", "", "", true},
		{"list", "", "namespaces", "", "", true},
		{"watch", "", "events", "", "", true},
		{"list", "", "configmaps", "", "", true},
		{"list", "", "persistentvolumeclaims", "", "", true},
		{"get", "", "services", "", "longhorn-system", true},
		{"list", "", "services", "", "", false},
		{"patch", "", "services", "", "media", false},
		{"list", "apps", "deployments", "", "", true},
		{"patch", "apps", "deployments", "", "media", true},
		{"patch", "apps", "deployments", "scale", "media", true},
		{"patch", "apps", "statefulsets", "", "media", true},
		{"patch", "apps", "statefulsets", "scale", "media", true},
		{"list", "apiextensions.k8s.io", "customresourcedefinitions", "", "", true},
		{"delete", "apiextensions.k8s.io", "customresourcedefinitions", "", "", true},
		{"watch", "kustomize.toolkit.fluxcd.io", "kustomizations", "", "", true},
		{"patch", "kustomize.toolkit.fluxcd.io", "kustomizations", "", "flux-system", true},

		{"get", "", "secrets", "", "", false},
		{"list", "", "secrets", "", "", false},
		{"watch", "", "secrets", "", "shepherd", false},
		{"patch", "", "secrets", "", "shepherd", false},
		{"create", "", "pods", "exec", "media", false},
		{"get", "", "pods", "exec", "media", false},
		{"create", "", "pods", "attach", "media", false},
		{"create", "", "pods", "portforward", "media", false},
		{"get", "", "nodes", "proxy", "", false},
		{"create", "", "pods", "eviction", "media", false},
		{"delete", "", "pods", "", "media", false},
		{"deletecollection", "", "pods", "", "media", false},
		{"create", "", "namespaces", "", "", false},
		{"create", "", "pods", "", "media", false},
		{"create", "apps", "deployments", "", "media", false},
		{"create", "", "configmaps", "", "media", false},
		{"create", "", "serviceaccounts", "token", "shepherd", false},
		{"update", "apps", "deployments", "", "media", false},
		{"delete", "apps", "deployments", "", "media", false},
		{"update", "apps", "deployments", "scale", "media", false},
		{"patch", "", "nodes", "", "", false},
		{"update", "", "nodes", "", "", false},
		{"create", "apiextensions.k8s.io", "customresourcedefinitions", "", "", false},
		{"update", "apiextensions.k8s.io", "customresourcedefinitions", "", "", false},
		{"patch", "apiextensions.k8s.io", "customresourcedefinitions", "", "", false},
		{"list", "longhorn.io", "volumes", "", "", false},
		{"delete", "kustomize.toolkit.fluxcd.io", "kustomizations", "", "flux-system", false},
		{"impersonate", "", "users", "", "", false},
		{"impersonate", "", "serviceaccounts", "", "kube-system", false},
		{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", false},
		{"bind", "rbac.authorization.k8s.io", "clusterroles", "", "", false},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", false},
		{"create", "certificates.k8s.io", "certificatesigningrequests", "", "", false},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-8s %-18s %-60s %s\n", "verdict", "verb", "resource", "namespace")
	for _, r := range rows {
		sar, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:   deploy.Username,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + deploy.Namespace, "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{
				Verb: r.verb, Group: r.group, Resource: r.resource, Subresource: r.sub, Namespace: r.ns,
			},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		res := r.group + "/" + r.resource
		if r.group == "" {
			res = r.resource
		}
		if r.sub != "" {
			res += "/" + r.sub
		}
		verdict := "DENY"
		if sar.Status.Allowed {
			verdict = "allow"
		}
		fmt.Fprintf(&b, "%-8s %-18s %-60s %s\n", verdict, r.verb, res, r.ns)
		if sar.Status.Allowed != r.allowed {
			t.Errorf("%s %s in %q: allowed=%v, want %v (%s)", r.verb, res, r.ns, sar.Status.Allowed, r.allowed, sar.Status.Reason)
		}
	}
	t.Log(b.String())
}
