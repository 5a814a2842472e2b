package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/ingest"
)

// TestCortexReport: a feature cluster's incident, recorded in a shared
// Cortex, shows in `shepherd cortex report` for that cluster and no other.
func TestCortexReport(t *testing.T) {
	const ctoken = "cortex-token-report"
	url := startCortex(t, ctoken)
	tokenFile := writeTemp(t, ctoken)
	ctx := context.Background()

	resp, err := http.Post(url+"/report", "application/json", strings.NewReader(`{"cluster":"feature-1"}`))
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("unauthenticated /report: %v %v", err, resp)
	}
	resp.Body.Close()

	cl, err := remoteCortex(url, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	const incident = "bumping postgres to 17 broke the shop api's migrations"
	for _, rec := range []cortex.OutcomeRecord{
		{Action: incident, Tool: "gitops_change", Outcome: cortex.OutcomeIncident, Cluster: "feature-1", When: time.Now().Add(-2 * time.Hour)},
		{Action: "restart shop/api", Tool: "restart_workload", Outcome: cortex.OutcomeSucceeded, Cluster: "feature-1", When: time.Now().Add(-3 * time.Hour)},
		{Action: "prod-only outage", Outcome: cortex.OutcomeIncident, Cluster: "prod", When: time.Now().Add(-time.Hour)},
	} {
		if err := cl.RecordOutcome(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	last := time.Now().Add(-time.Hour)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "api-7d9.1", Namespace: "shop"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "api-7d9"},
		Reason:         "BackOff", Message: "Back-off restarting failed container api", Type: corev1.EventTypeWarning, Count: 17,
		FirstTimestamp: metav1.NewTime(last.Add(-time.Hour)), LastTimestamp: metav1.NewTime(last),
	}
	if _, err := cl.Ingest(ctx, cortex.IngestRequest{Collection: cortex.CollectionEvents,
		Documents: []cortex.Document{ingest.EventDocument("feature-1", ev)}}); err != nil {
		t.Fatal(err)
	}

	report := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"cortex", "report"}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := report("--cluster", "feature-1", "--cortex-url", url, "--cortex-token-file", tokenFile)
	if err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	for _, want := range []string{"## Promotion report for cluster feature-1 (since ", "17× ", "Warning BackOff on pod/api-7d9 in namespace shop",
		"### Action outcomes: 1 succeeded, 0 failed, 1 incident", "- incident ", "**Verdict:** 1 action caused an incident: `" + incident + "`"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "prod-only") {
		t.Errorf("report of feature-1 names prod's incident:\n%s", out)
	}

	out, err = report("--cluster", "feature-1", "--since", "90m", "--json", "--cortex-url", url, "--cortex-token-file", tokenFile)
	if err != nil {
		t.Fatalf("report --json: %v\n%s", err, out)
	}
	var rep cortex.ReportResponse
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report --json is not JSON: %v\n%s", err, out)
	}
	// The last 90 minutes hold the event (last seen an hour ago) but not the outcomes.
	if rep.Cluster != "feature-1" || len(rep.Problems) != 1 || rep.Problems[0].Count != 17 || rep.Outcomes != (cortex.OutcomeCounts{}) {
		t.Fatalf("report --since 90m --json: %+v", rep)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cortex-url", url, "--cortex-token-file", tokenFile}, "--cluster is required"},
		{[]string{"--cluster", "feature-1", "--since", "0s", "--cortex-url", url}, "--since 0s: want a positive duration"},
		{[]string{"--cluster", "feature-1", "--top", "101", "--cortex-url", url}, "--top 101: want 1 to 100"},
		{[]string{"--cluster", "feature-1", "--cortex-url", url, "--cortex-token-file", writeTemp(t, "wrong")}, "401 Unauthorized"},
		{[]string{"--cluster", "feature-1", "--cortex-url", url, "--reranker-url", "http://tei"}, "--reranker-url configure an in-process Cortex"},
	} {
		if out, err := report(c.args...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("report %v: want a failure saying %q, got %v: %s", c.args, c.want, err, out)
		}
	}

	// Without --cortex-url the report reads the embedded store, which must
	// exist: a mistyped --data-dir is an error, not an empty report.
	dataDir := t.TempDir()
	if out, err := report("--cluster", "feature-1", "--data-dir", dataDir); err == nil || !strings.Contains(out, "no embedded Cortex in --data-dir") {
		t.Fatalf("report of a missing store: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Fatalf("the report created files in --data-dir: %v", entries)
	}
	if out, err := exec.Command(bin, "ingest", "docs", writeRunbooks(t), "--data-dir", dataDir, "--cluster-name", "prod").CombinedOutput(); err != nil {
		t.Fatalf("ingest: %v %s", err, out)
	}
	out, err = report("--cluster", "feature-1", "--data-dir", dataDir)
	if err != nil || !strings.Contains(out, "**Verdict:** No incidents recorded; Cortex holds nothing of cluster feature-1") {
		t.Fatalf("report of an embedded store without feature-1: %v\n%s", err, out)
	}
}
