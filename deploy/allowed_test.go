package deploy_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cluster-shepherd/shepherd/deploy"
	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/testenv"
	"github.com/cluster-shepherd/shepherd/internal/tools"
)

// Everything shepherd does works under its ServiceAccount: the informers
// sync, every read tool answers over MCP, and each write lands.
func TestShepherdWorksUnderItsServiceAccount(t *testing.T) {
	ctx := contextFor(t, 4*time.Minute)
	client, err := cluster.NewClient(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	cache := cluster.NewCache(client, nil)
	if err := cache.Start(ctx, time.Minute); err != nil {
		t.Fatalf("informers under the ServiceAccount: %v", err)
	}

	t.Run("cluster reads", func(t *testing.T) {
		ws, err := cache.Workloads("")
		if err != nil || len(ws) < len(scenario.Deployments)+len(scenario.StatefulSets) {
			t.Fatalf("Workloads: %d, %v", len(ws), err)
		}
		rep, err := cache.Alerts("", time.Now())
		if err != nil || len(rep.Alerts) == 0 || rep.PodsChecked == 0 {
			t.Fatalf("Alerts: %+v, %v", rep, err)
		}
		nodes, err := cache.NodeStatuses()
		if err != nil || len(nodes) != len(scenario.Nodes) {
			t.Fatalf("NodeStatuses: %d nodes (want %d), %v", len(nodes), len(scenario.Nodes), err)
		}
		ks, err := cache.Kustomizations("")
		if err != nil || len(ks) != len(scenario.Kustomizations) {
			t.Fatalf("Kustomizations: %d (want %d), %v", len(ks), len(scenario.Kustomizations), err)
		}
		lp := scenario.LogPod
		logs, err := cache.Logs(ctx, lp.Namespace, lp.Name, lp.Container, 20, false)
		if err != nil || len(logs.Lines) == 0 {
			t.Fatalf("Logs of %s/%s: %+v, %v", lp.Namespace, lp.Name, logs, err)
		}
	})

	t.Run("read tools over MCP", func(t *testing.T) {
		srv := tools.NewServer(&tools.Deps{Cache: cache}, tools.All(), "test")
		st, ct := mcp.NewInMemoryTransports()
		ss, err := srv.Connect(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "deploy-test", Version: "1"}, nil).Connect(ctx, ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		lp := scenario.LogPod
		calls := []struct {
			name string
			args map[string]any
			want string
		}{
			{"get_cluster_alerts", map[string]any{}, scenario.CrashLoopPod.Name},
			{"get_pod_logs", map[string]any{"namespace": lp.Namespace, "pod": lp.Name, "lines": 20}, ""},
			{"get_node_status", map[string]any{}, scenario.MemoryPressureNode},
			{"get_flux_status", map[string]any{}, scenario.FailingKustomization.Name},
			{"list_workloads", map[string]any{}, scenario.StatefulSets[0].Name},
			{"get_node_list", map[string]any{}, testenv.NodeWorker1},
		}
		for _, c := range calls {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.name, Arguments: c.args})
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			text := ""
			for _, ct := range res.Content {
				if tc, ok := ct.(*mcp.TextContent); ok {
					text += tc.Text
				}
			}
			if res.IsError || text == "" || !strings.Contains(text, c.want) {
				t.Errorf("%s: isError=%v, want %q in:\n%s", c.name, res.IsError, c.want, text)
			}
			for _, line := range strings.Split(text, "\n") {
				if !containsFold(line, "forbidden") {
					continue
				}
				t.Errorf("%s: a read was refused under the ServiceAccount: %s", c.name, line)
			}
			for _, s := range scenario.SecretValues {
				if strings.Contains(text, s) {
					t.Errorf("%s leaked a planted secret", c.name)
				}
			}
		}
	})

	t.Run("restart and scale", func(t *testing.T) {
		d := scenario.Deployments[0]
		stamp, err := cache.Restart(ctx, cluster.KindDeployment, d.Namespace, d.Name, time.Now())
		if err != nil {
			t.Fatalf("Restart: %v", err)
		}
		got, err := admin.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil || got.Spec.Template.Annotations[cluster.RestartedAtAnnotation] != stamp {
			t.Fatalf("restart stamp not applied: %v", err)
		}
		s := scenario.StatefulSets[0]
		if _, err := cache.Restart(ctx, cluster.KindStatefulSet, s.Namespace, s.Name, time.Now()); err != nil {
			t.Fatalf("Restart StatefulSet: %v", err)
		}
		prev, err := cache.Scale(ctx, cluster.KindStatefulSet, s.Namespace, s.Name, 3)
		if err != nil {
			t.Fatalf("Scale StatefulSet: %v", err)
		}
		sts, err := admin.AppsV1().StatefulSets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil || *sts.Spec.Replicas != 3 {
			t.Fatalf("scale not applied: %v", err)
		}
		if _, err := cache.Scale(ctx, cluster.KindDeployment, d.Namespace, d.Name, 2); err != nil {
			t.Fatalf("Scale Deployment: %v", err)
		}
		t.Logf("scaled %s/%s from %d to 3", s.Namespace, s.Name, prev)
	})

	t.Run("flux operations", func(t *testing.T) {
		k := scenario.Kustomizations[0]
		for _, op := range []string{cluster.FluxSuspend, cluster.FluxResume, cluster.FluxReconcile} {
			if _, err := cache.FluxOp(ctx, op, k.Namespace, k.Name, time.Now()); err != nil {
				t.Fatalf("FluxOp %s: %v", op, err)
			}
		}
		u, err := adminDyn.Resource(cluster.KustomizationGVR).Namespace(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
		if err != nil || u.GetAnnotations()[cluster.ReconcileAnnotation] == "" {
			t.Fatalf("reconcile annotation not applied: %v", err)
		}
	})

	t.Run("delete_crds", func(t *testing.T) { testCRDs(t, cache) })
}

// testCRDs shows what the base role does for delete_crds: the CRDs are found
// and deleted, but their custom resources cannot be counted (RBAC cannot
// grant "list every custom resource" without secrets), which the gate turns
// into a review floor. With the opt-in role for the group they are counted.
func testCRDs(t *testing.T, cache *cluster.Cache) {
	ctx := contextFor(t, 2*time.Minute)
	group := scenario.CRDGroup

	inv, err := cache.CRDsOf(ctx, group)
	if err != nil {
		t.Fatalf("CRDsOf: %v", err)
	}
	slices.Sort(scenario.CRDs)
	if !slices.Equal(inv.CRDs, scenario.CRDs) {
		t.Fatalf("CRDsOf found %v, want %v", inv.CRDs, scenario.CRDs)
	}
	if inv.Resources != 0 || len(inv.Unlisted) != len(scenario.CRDs) {
		t.Fatalf("base role: want every CRD unlisted and nothing counted, got %+v", inv)
	}
	for _, u := range inv.Unlisted {
		if !containsFold(u, "forbidden") {
			t.Errorf("unlisted for another reason than RBAC: %s", u)
		}
	}
	t.Logf("base role, CRDsOf(%s): %d CRDs, custom resources not counted: %s", group, len(inv.CRDs), inv.Unlisted[0])
	// The conversion probe cannot list the custom resources under the base
	// role, but it can see that the webhook's Service is gone: the orphaned
	// CRDs are reported all the same.
	cache.RefreshConversionProbe(ctx)
	var orphaned []string
	for _, ci := range cache.ConversionIssues() {
		if ci.Service == scenario.ConversionService && strings.Contains(ci.Error, "does not exist") {
			orphaned = append(orphaned, ci.CRD)
		}
		t.Logf("base role, conversion probe: %s at %s: %s", ci.CRD, ci.Version, ci.Error)
	}
	slices.Sort(orphaned)
	if !slices.Equal(orphaned, scenario.CRDs) {
		t.Fatalf("base role: orphaned CRDs reported %v, want %v", orphaned, scenario.CRDs)
	}

	// Opt in for this group: listing is granted and counting works.
	extra, err := deploy.Decode(deploy.CustomResourcesExample)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, extra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := remove(ctx, extra); err != nil {
			t.Error(err)
		}
	})
	want := 0
	for _, n := range scenario.CRDs {
		want += scenario.CustomResources[n]
	}
	// RBAC changes reach the authorizer through an informer: poll briefly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		inv, err = cache.CRDsOf(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Unlisted) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if inv.Resources != want || len(inv.Unlisted) != 0 {
		t.Fatalf("with %s: want %d custom resources counted, got %+v", deploy.CustomResourcesExample, want, inv)
	}
	cache.RefreshConversionProbe(ctx)
	issues := cache.ConversionIssues()
	if len(issues) != len(scenario.CRDs) {
		t.Errorf("with list granted the probe should see %d broken webhooks, got %+v", len(scenario.CRDs), issues)
	}
	for _, ci := range issues {
		if containsFold(ci.Error, "forbidden") {
			t.Errorf("probe still refused for %s: %s", ci.CRD, ci.Error)
		}
	}
	if len(issues) > 0 {
		t.Logf("opt-in role, conversion probe: %s: %s", issues[0].CRD, issues[0].Error)
	}

	// Custom resources themselves stay read-only even then.
	vol := schema.GroupVersionResource{Group: group, Version: "v1beta2", Resource: "volumes"}
	saDyn := saDynamic(t)
	if _, err := saDyn.Resource(vol).Namespace("longhorn-system").Get(ctx, "x", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get custom resource: want Forbidden, got %v", err)
	}

	del, err := cache.DeleteCRDs(ctx, group)
	if err != nil {
		t.Fatalf("DeleteCRDs: %v", err)
	}
	if len(del.Terminating) != 0 {
		t.Errorf("still terminating: %v", del.Terminating)
	}
	for _, n := range scenario.CRDs {
		if _, err := admin.Discovery().RESTClient().Get().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", n).DoRaw(ctx); !apierrors.IsNotFound(err) {
			t.Errorf("CRD %s still exists: %v", n, err)
		}
	}
	if _, err := admin.Discovery().RESTClient().Get().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", scenario.UnrelatedCRD).DoRaw(ctx); err != nil {
		t.Errorf("unrelated CRD %s: %v", scenario.UnrelatedCRD, err)
	}
	if issues := cache.ConversionIssues(); len(issues) != 0 {
		t.Errorf("conversion issues after deleting the CRDs: %+v", issues)
	}
}
