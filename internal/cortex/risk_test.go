package cortex_test

import (
	"context"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		action, tool string
		args         map[string]any
		want         string
	}{
		{"show me the logs", "get_pod_logs", nil, "read"},
		{"check disk on node", "run_node_cmd", map[string]any{"node": "w1", "command": "df -h"}, "read"},
		{"", "run_flux_op", map[string]any{"operation": "reconcile", "namespace": "flux-system", "name": "apps"}, "reconcile"},
		{"", "restart_workload", map[string]any{"namespace": "a", "name": "b"}, "restart"},
		{"", "scale_workload", map[string]any{"namespace": "a", "name": "b", "replicas": 1.0}, "scale_down"},
		{"", "run_flux_op", map[string]any{"operation": "suspend"}, "suspend"},
		{"", "gitops_change", map[string]any{"operation": "update", "file_path": "apps/x.yaml"}, "gitops_update"},
		{"", "gitops_change", map[string]any{"operation": "read", "file_path": "apps/x.yaml"}, "read"},
		{"", "gitops_change", map[string]any{"operation": "delete", "file_path": "apps/web/deploy.yaml"}, "delete"},
		{"", "gitops_change", map[string]any{"operation": "delete", "file_path": "apps/db/pvc.yaml"}, "destroy_data"},
		{"", "scale_workload", map[string]any{"namespace": "a", "name": "b", "replicas": 0.0}, "delete"},
		{"", "delete_crds", map[string]any{"domain": "cnpg.io"}, "delete"}, // shepherd counts the data live
		{"reconcile the apps kustomization", "", nil, "reconcile"},
		{"restart immich/immich", "", nil, "restart"},
		{"scale web down to 2 replicas", "", nil, "scale_down"},
		{"suspend flux for authentik", "", nil, "suspend"},
		{"commit a change to the authentik helm values", "", nil, "gitops_update"},
		{"scale shop/api to 0", "", nil, "delete"},
		{"delete pod web-123", "", nil, "delete"},
		{"delete the postgres database cluster pg-main", "", nil, "destroy_data"},
		{"delete the PVC data-postgres-0", "", nil, "destroy_data"},
		{"delete namespace staging", "", nil, "destroy_data"},
		{"frobnicate the widget", "", nil, "unknown"},
		{"", "some_new_tool", nil, "unknown"},
	} {
		if got := cortex.Classify(tc.action, tc.tool, tc.args); got.Name != tc.want {
			t.Errorf("Classify(%q, %q, %v) = %s, want %s", tc.action, tc.tool, tc.args, got.Name, tc.want)
		}
	}
	order := []cortex.Class{cortex.ClassRead, cortex.ClassReconcile, cortex.ClassRestart, cortex.ClassScaleDown,
		cortex.ClassSuspend, cortex.ClassGitOps, cortex.ClassDelete, cortex.ClassDestroy}
	for i := 1; i < len(order); i++ {
		if order[i].Prior <= order[i-1].Prior {
			t.Errorf("prior of %s (%v) not above %s (%v)", order[i].Name, order[i].Prior, order[i-1].Name, order[i-1].Prior)
		}
	}
}

func TestRiskScoring(t *testing.T) {
	ctx := context.Background()
	type outcome struct {
		action, outcome string
		age             time.Duration
		args            map[string]any
	}
	restartAuth := cortex.RiskRequest{Action: "restart authentik/authentik-server", Tool: "restart_workload",
		Arguments: map[string]any{"namespace": "authentik", "name": "authentik-server"}}
	for _, tc := range []struct {
		name     string
		history  []outcome
		verified bool
		req      cortex.RiskRequest
		want     cortex.Recommendation
		cites    int
		min, max float64
	}{
		{name: "read with no history", req: cortex.RiskRequest{Action: "show logs of web", Tool: "get_pod_logs"}, want: cortex.Auto, max: 0.05},
		{name: "restart with no history", req: restartAuth, want: cortex.Auto, min: 0.15, max: 0.15},
		{name: "delete data is rejected", req: cortex.RiskRequest{Action: "delete the PVC data-postgres-0 in namespace db"}, want: cortex.Reject},
		{name: "scale to zero needs review", req: cortex.RiskRequest{Tool: "scale_workload", Arguments: map[string]any{"namespace": "shop", "name": "api", "replicas": 0}}, want: cortex.Review},
		{name: "fresh incident raises", history: []outcome{{"restarting authentik during a database migration caused a 20-minute outage", "incident", 24 * time.Hour, nil}},
			req: restartAuth, want: cortex.Review, cites: 1, min: 0.4},
		{name: "old incident fades", history: []outcome{{"restarting authentik during a database migration caused a 20-minute outage", "incident", 720 * 24 * time.Hour, nil}},
			req: restartAuth, want: cortex.Auto, cites: 1, max: 0.2},
		{name: "failed outcome raises less than an incident", history: []outcome{{"restart authentik server", "failed", time.Hour,
			map[string]any{"namespace": "authentik", "name": "authentik-server"}}}, req: restartAuth, want: cortex.Review, cites: 1, min: 0.3, max: 0.45},
		{name: "successes do not raise", history: []outcome{{"restart authentik server", "succeeded", time.Hour, map[string]any{"namespace": "authentik", "name": "authentik-server"}}},
			req: restartAuth, want: cortex.Auto, max: 0.15},
		{name: "other target's incidents do not count", history: []outcome{{"restarting authentik during a database migration caused a 20-minute outage", "incident", time.Hour, nil}},
			req: cortex.RiskRequest{Action: "restart immich/immich"}, want: cortex.Auto, max: 0.15},
		{name: "verified solution lowers within class", history: []outcome{{"restarting authentik during a database migration caused a 20-minute outage", "incident", 24 * time.Hour, nil}},
			verified: true, req: restartAuth, cites: 1, min: 0.15, max: 0.35},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t, cortex.Options{})
			for i, h := range tc.history {
				err := s.RecordOutcome(ctx, cortex.OutcomeRecord{Action: h.action, Outcome: h.outcome, When: now.Add(-h.age), Cluster: "prod",
					Tool: map[bool]string{true: "restart_workload"}[h.args != nil], Arguments: h.args, ID: "o" + string(rune('a'+i))})
				if err != nil {
					t.Fatal(err)
				}
			}
			if tc.verified {
				e, err := s.PutKnownError(ctx, cortex.KnownError{Pattern: "authentik migration lock outage on restart", Incidents: []string{"oa"}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.PutSolution(ctx, cortex.Solution{Description: "wait for the migration job, then restart", Verified: true, ErrorIDs: []string{e.ID}}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Risk(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if (tc.want != "" && got.Recommendation != tc.want) || len(got.SimilarIncidents) != tc.cites ||
				got.Score < tc.min || (tc.max > 0 && got.Score > tc.max) {
				t.Fatalf("got %.3f %s with %d incidents; want %s, %d incidents, score in [%v, %v]\n%s",
					got.Score, got.Recommendation, len(got.SimilarIncidents), tc.want, tc.cites, tc.min, tc.max, got.Reasoning)
			}
		})
	}
}
