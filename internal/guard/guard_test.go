package guard_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/guard/storetest"
)

func fileBacking(t *testing.T) func() guard.Store {
	dir := t.TempDir()
	return func() guard.Store {
		s, err := guard.OpenFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestFileStore(t *testing.T) { storetest.RunStore(t, fileBacking) }

func TestGateOnFileStore(t *testing.T) { storetest.RunGate(t, fileBacking) }

func TestCanonical(t *testing.T) {
	same := []map[string]any{
		{"namespace": "shop", "name": "web", "replicas": 3},
		{"replicas": 3.0, "name": "web", "namespace": "shop"},
		{"replicas": json.Number("3"), "name": "web", "namespace": "shop", "kind": nil},
		{"replicas": json.Number("3.000"), "name": "web", "namespace": "shop"},
		{"replicas": int64(3), "name": "web", "namespace": "shop"},
	}
	key0, cj0, err := guard.Canonical("scale_workload", same[0])
	if err != nil {
		t.Fatal(err)
	}
	if cj0 != `{"name":"web","namespace":"shop","replicas":3}` {
		t.Fatalf("canonical JSON = %s", cj0)
	}
	for _, args := range same[1:] {
		key, cj, err := guard.Canonical("scale_workload", args)
		if err != nil || key != key0 || cj != cj0 {
			t.Errorf("%v: key %s json %s err %v; want %s", args, key, cj, err, cj0)
		}
	}
	different := []struct {
		tool string
		args map[string]any
	}{
		{"restart_workload", same[0]},
		{"scale_workload", map[string]any{"namespace": "shop", "name": "web", "replicas": 3.5}},
		{"scale_workload", map[string]any{"namespace": "shop", "name": "web", "replicas": "3"}},
		{"scale_workload", map[string]any{"namespace": "shop ", "name": "web", "replicas": 3}},
		{"scale_workload", map[string]any{"namespace": "shop", "name": "web", "replicas": 3, "kind": "Deployment"}},
		{"scale_workload", map[string]any{"namespace": "shop", "name": "web"}},
	}
	for _, d := range different {
		key, _, err := guard.Canonical(d.tool, d.args)
		if err != nil || key == key0 {
			t.Errorf("%s %v must differ from the original call (err %v)", d.tool, d.args, err)
		}
	}
	if k1, _, _ := guard.Canonical("x", nil); k1 == "" {
		t.Error("nil args must canonicalise")
	}
	if k1, _, _ := guard.Canonical("x", nil); func() string { k, _, _ := guard.Canonical("x", map[string]any{}); return k }() != k1 {
		t.Error("nil and empty args must be the same call")
	}
	nested := map[string]any{"a": map[string]any{"z": []any{1.0, "b", map[string]any{"y": 2, "x": 1}}}}
	if _, cj, _ := guard.Canonical("x", nested); cj != `{"a":{"z":[1,"b",{"x":1,"y":2}]}}` {
		t.Errorf("nested canonical = %s", cj)
	}
	if _, cj, _ := guard.Canonical("gitops_change", map[string]any{"content": "<a&b>"}); cj != `{"content":"<a&b>"}` {
		t.Errorf("HTML must not be escaped: %s", cj)
	}
	bad := []map[string]any{
		{"n": json.Number("1e999")},
		{"n": json.Number("abc")},
		{"f": func() {}},
	}
	for _, b := range bad {
		if _, _, err := guard.Canonical("x", b); err == nil {
			t.Errorf("%v: want error", b)
		}
	}
	if _, _, err := guard.Canonical(" ", nil); err == nil {
		t.Error("empty tool must fail")
	}
	deep := map[string]any{}
	cur := deep
	for range 100 {
		next := map[string]any{}
		cur["a"] = next
		cur = next
	}
	if _, _, err := guard.Canonical("x", deep); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("deep nesting: %v", err)
	}
}

func TestFloors(t *testing.T) {
	cfg := guard.DefaultFloors("shepherd")
	cfg.Deny = []string{"run_node_cmd:db-*", "delete_crds:*.fluxcd.io", "gitops_change:clusters/prod/*", "delete_crds:backup.*.longhorn.io", "delete_crds:*.Velero.IO", "scale_workload:payments/*", "scale_workload:Ledger/*"}
	cases := []struct {
		name string
		tool string
		args map[string]any
		want guard.Level
		why  string
	}{
		{"scale up", "scale_workload", map[string]any{"namespace": "shop", "name": "web", "replicas": 3}, guard.Auto, ""},
		{"scale to zero", "scale_workload", map[string]any{"namespace": "shop", "name": "web", "replicas": 0}, guard.Review, "0 replicas"},
		{"scale to zero json", "scale_workload", map[string]any{"namespace": "shop", "name": "web", "replicas": json.Number("0")}, guard.Review, "0 replicas"},
		{"scale missing replicas", "scale_workload", map[string]any{"namespace": "shop", "name": "web"}, guard.Review, "0 replicas"},
		{"scale negative", "scale_workload", map[string]any{"namespace": "shop", "name": "web", "replicas": -1}, guard.Review, ""},
		{"restart kube-system", "restart_workload", map[string]any{"namespace": "kube-system", "name": "coredns"}, guard.Review, "kube-system is protected"},
		{"restart flux-system", "restart_workload", map[string]any{"namespace": "flux-system", "name": "source-controller"}, guard.Review, "protected"},
		{"restart kube-system, odd spelling", "restart_workload", map[string]any{"namespace": " Kube-System", "name": "coredns"}, guard.Review, "protected"},
		{"scale denied namespace, odd spelling", "scale_workload", map[string]any{"namespace": "Payments ", "name": "api", "replicas": 2}, guard.Reject, "denied"},
		{"scale denied namespace, odd rule", "scale_workload", map[string]any{"namespace": "ledger", "name": "api", "replicas": 2}, guard.Reject, "denied"},
		{"restart self", "restart_workload", map[string]any{"namespace": "shepherd", "name": "shepherd"}, guard.Review, "protected"},
		{"restart app", "restart_workload", map[string]any{"namespace": "shop", "name": "web"}, guard.Auto, ""},
		{"flux suspend", "run_flux_op", map[string]any{"operation": "suspend", "namespace": "apps", "name": "shop"}, guard.Review, "suspending"},
		{"flux reconcile", "run_flux_op", map[string]any{"operation": "reconcile", "namespace": "apps", "name": "shop"}, guard.Auto, ""},
		{"flux resume", "run_flux_op", map[string]any{"operation": "resume", "namespace": "apps", "name": "shop"}, guard.Auto, ""},
		{"delete crds", "delete_crds", map[string]any{"domain": "example.com"}, guard.Review, "deleting CRDs"},
		{"delete flux crds", "delete_crds", map[string]any{"domain": "toolkit.fluxcd.io"}, guard.Reject, "denied"},
		{"delete parent of flux", "delete_crds", map[string]any{"domain": "fluxcd.io"}, guard.Reject, "denied"},
		{"delete parent of flux, odd case", "delete_crds", map[string]any{"domain": "FluxCD.io."}, guard.Reject, "denied"},
		{"delete tld over flux", "delete_crds", map[string]any{"domain": "io"}, guard.Reject, "denied"},
		{"delete flux crds, odd case", "delete_crds", map[string]any{"domain": "Toolkit.FluxCD.io."}, guard.Reject, "denied"},
		{"delete flux crds, spaces", "delete_crds", map[string]any{"domain": " toolkit.fluxcd.io "}, guard.Reject, "denied"},
		// Deleting longhorn.io takes backup.x.longhorn.io with it.
		{"delete parent of a wildcard rule", "delete_crds", map[string]any{"domain": "longhorn.io"}, guard.Reject, "denied"},
		{"delete under a wildcard rule", "delete_crds", map[string]any{"domain": "backup.storage.longhorn.io"}, guard.Reject, "denied"},
		{"delete beside a wildcard rule", "delete_crds", map[string]any{"domain": "storage.longhorn.io"}, guard.Reject, "denied"},
		{"delete sibling of a wildcard rule", "delete_crds", map[string]any{"domain": "longhorn.example.io"}, guard.Review, "deleting CRDs"},
		// Domains are case-insensitive, and so is a rule about them.
		{"delete under an upper-case rule", "delete_crds", map[string]any{"domain": "backups.velero.io"}, guard.Reject, "denied"},
		{"delete parent of an upper-case rule", "delete_crds", map[string]any{"domain": "velero.io"}, guard.Reject, "denied"},
		{"delete sibling of flux", "delete_crds", map[string]any{"domain": "example.io"}, guard.Review, "deleting CRDs"},
		{"delete k8s.io", "delete_crds", map[string]any{"domain": "apiextensions.k8s.io"}, guard.Review, "protected"},
		{"delete sub of protected", "delete_crds", map[string]any{"domain": "foo.x-k8s.io"}, guard.Review, "x-k8s.io is protected"},
		{"delete empty domain", "delete_crds", map[string]any{}, guard.Review, "protected"},
		{"node cmd denied", "run_node_cmd", map[string]any{"node": "db-1", "command": "uptime"}, guard.Reject, "denied"},
		{"node cmd ok", "run_node_cmd", map[string]any{"node": "web-1", "command": "uptime"}, guard.Auto, ""},
		{"gitops prod denied", "gitops_change", map[string]any{"operation": "update", "file_path": "clusters/prod/app.yaml"}, guard.Reject, "denied"},
		{"gitops staging", "gitops_change", map[string]any{"operation": "update", "file_path": "clusters/staging/app.yaml"}, guard.Auto, ""},
		{"no tool", "", map[string]any{"namespace": "kube-system"}, guard.Auto, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := guard.Auto
			var reasons []string
			for _, f := range cfg.Floors(c.tool, c.args) {
				if f.Min == guard.Reject || (f.Min == guard.Review && got == guard.Auto) {
					got = f.Min
				}
				reasons = append(reasons, f.Reason)
			}
			if got != c.want {
				t.Fatalf("level %s, want %s (%v)", got, c.want, reasons)
			}
			if c.why != "" && !strings.Contains(strings.Join(reasons, "|"), c.why) {
				t.Fatalf("reasons %v do not mention %q", reasons, c.why)
			}
		})
	}
	if err := (guard.FloorConfig{Deny: []string{"[bad"}}).Validate(); err == nil {
		t.Error("malformed deny pattern must be reported")
	}
}
