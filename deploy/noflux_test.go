package deploy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/cluster-shepherd/shepherd/deploy"
	"github.com/cluster-shepherd/shepherd/internal/cluster"
)

// TestRoleWithoutFluxRule: an operator who trimmed the Flux rule from the
// ClusterRole still gets a server that starts, answers every other tool,
// and says why get_flux_status cannot work, instead of hanging at startup
// waiting for a Kustomization cache that can never fill.
func TestRoleWithoutFluxRule(t *testing.T) {
	ctx := contextFor(t, 2*time.Minute)
	objs, err := deploy.Decode("clusterrole.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if len(objs) != 1 || runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &role) != nil {
		t.Fatalf("clusterrole.yaml: want one ClusterRole, got %d objects", len(objs))
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: "shepherd-noflux"}
	role.Rules = slices.DeleteFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.APIGroups, cluster.KustomizationGVR.Group)
	})
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const user = "system:serviceaccount:shepherd:noflux"
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "shepherd-noflux"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.RbacV1().ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{})
		admin.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{})
	})

	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:serviceaccounts", "system:authenticated"}}
	client, err := cluster.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.NewCache(client, nil)
	began := time.Now()
	if err := c.Start(ctx, 5*time.Second); err != nil {
		t.Fatalf("start without the Flux rule: %v", err)
	}
	t.Logf("started in %s", time.Since(began).Round(time.Millisecond))
	if ws, err := c.Workloads(""); err != nil || len(ws) == 0 {
		t.Fatalf("other reads broke: %d workloads, %v", len(ws), err)
	}
	_, err = c.Kustomizations("")
	if !errors.Is(err, cluster.ErrFluxUnlisted) || !strings.Contains(err.Error(), "forbidden") ||
		!strings.Contains(err.Error(), "kustomizations.kustomize.toolkit.fluxcd.io") {
		t.Fatalf("Kustomizations: want a listing error naming the resource and the refusal, got %v", err)
	}
	t.Logf("get_flux_status would say: %v", err)
}
