package cortex_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/ingest"
)

// warning is a Warning event as the API server holds it, first seen a day
// before it was last seen.
func warning(ns, pod, reason, msg string, count int32, last time.Time) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: pod + ".1", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
		Reason:         reason, Message: msg, Type: corev1.EventTypeWarning, Count: count,
		FirstTimestamp: metav1.NewTime(last.Add(-24 * time.Hour)), LastTimestamp: metav1.NewTime(last),
	}
}

// seedHistory gives feature-1 and prod a week of events and outcomes, each
// built the way shepherd builds them (the event ingester, RecordOutcome).
func seedHistory(t *testing.T, s *cortex.Service) {
	t.Helper()
	ctx := context.Background()
	events := map[string][]*corev1.Event{
		"feature-1": {
			warning("shop", "api-7d9", "BackOff", "Back-off restarting failed container api", 42, now.Add(-time.Hour)),
			warning("shop", "worker-1", "FailedScheduling", "0/3 nodes are available: 3 Insufficient memory", 5, now.Add(-2*time.Hour)),
			warning("shop", "web-2", "Unhealthy", "Readiness probe failed: "+strings.Repeat("HTTP 503 ", 200), 5, now.Add(-30*time.Minute)),
			warning("shop", "cron-9", "BackOff", "last seen ten days ago", 900, now.Add(-240*time.Hour)),
		},
		"prod": {warning("shop", "api-1a2", "BackOff", "prod-only crash loop", 1000, now.Add(-time.Hour))},
	}
	for cluster, evs := range events {
		for _, ev := range evs {
			if _, err := s.Ingest(ctx, cortex.IngestRequest{Collection: cortex.CollectionEvents,
				Documents: []cortex.Document{ingest.EventDocument(cluster, ev)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, rec := range []cortex.OutcomeRecord{
		{Action: "restart shop/api", Tool: "restart_workload", Arguments: map[string]any{"namespace": "shop", "name": "api"},
			Outcome: cortex.OutcomeSucceeded, Cluster: "feature-1", When: now.Add(-72 * time.Hour)},
		{Action: "scale shop/worker to 5", Tool: "scale_workload", Arguments: map[string]any{"namespace": "shop", "name": "worker", "replicas": 5},
			Outcome: cortex.OutcomeFailed, Cluster: "feature-1", When: now.Add(-48 * time.Hour)},
		{Action: "bump postgres to 17 in shop: the api's migrations broke", Tool: "gitops_change",
			Outcome: cortex.OutcomeIncident, Cluster: "feature-1", When: now.Add(-24 * time.Hour)},
		{Action: "old incident outside the window", Outcome: cortex.OutcomeIncident, Cluster: "feature-1", When: now.Add(-240 * time.Hour)},
		{Action: "prod-only outage", Outcome: cortex.OutcomeIncident, Cluster: "prod", When: now.Add(-time.Hour)},
	} {
		if err := s.RecordOutcome(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	// A conversation is chat history but no outcome.
	if _, err := s.Ingest(ctx, cortex.IngestRequest{Collection: cortex.CollectionChat, Documents: []cortex.Document{{
		ID: "conv-1", Cluster: "feature-1", Text: "why is the api pod restarting?", Metadata: map[string]string{"kind": "conversation"},
		CreatedAt: now.Add(-5 * time.Hour), UpdatedAt: now.Add(-5 * time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
}

func TestReportSummarisesOneCluster(t *testing.T) {
	ctx := context.Background()
	s := newService(t, cortex.Options{})
	seedHistory(t, s)
	rep, err := s.Report(ctx, cortex.ReportRequest{Cluster: "feature-1"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cluster != "feature-1" || !rep.Since.Equal(now.Add(-7*24*time.Hour)) || !rep.Until.Equal(now) {
		t.Fatalf("window %s %s..%s", rep.Cluster, rep.Since, rep.Until)
	}
	wantDocs := map[string]int{cortex.CollectionEvents: 3, cortex.CollectionChat: 4, cortex.CollectionManifest: 0, cortex.CollectionDocs: 0}
	if !reflect.DeepEqual(rep.Documents, wantDocs) || len(rep.Partial) != 0 {
		t.Fatalf("documents %v partial %v, want %v", rep.Documents, rep.Partial, wantDocs)
	}

	// Most seen first; equal counts, most recently seen first.
	var got []string
	for _, p := range rep.Problems {
		got = append(got, fmt.Sprintf("%s %s %s %d", p.Namespace, p.Object, p.Reason, p.Count))
	}
	want := []string{"shop pod/api-7d9 BackOff 42", "shop pod/web-2 Unhealthy 5", "shop pod/worker-1 FailedScheduling 5"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems %q, want %q", got, want)
	}
	top := rep.Problems[0]
	if !top.LastSeen.Equal(now.Add(-time.Hour)) || !top.FirstSeen.Equal(now.Add(-25*time.Hour)) || !strings.Contains(top.Text, "Back-off restarting failed container api") {
		t.Fatalf("top problem %+v", top)
	}
	if n := len(rep.Problems[1].Text); n > 300 {
		t.Fatalf("problem text is %d bytes, want at most 300", n)
	}

	if rep.Outcomes != (cortex.OutcomeCounts{Succeeded: 1, Failed: 1, Incident: 1}) {
		t.Fatalf("outcomes %+v", rep.Outcomes)
	}
	if len(rep.Failures) != 2 || rep.Failures[0].Outcome != cortex.OutcomeIncident || rep.Failures[1].Outcome != cortex.OutcomeFailed {
		t.Fatalf("failures %+v, want the incident then the failure", rep.Failures)
	}
	inc := rep.Failures[0]
	if inc.Tool != "gitops_change" || !inc.When.Equal(now.Add(-24*time.Hour)) || !strings.HasPrefix(inc.ID, "outcome-") ||
		!strings.Contains(inc.Action, "postgres to 17") {
		t.Fatalf("incident %+v", inc)
	}

	for _, want := range []string{
		"## Promotion report for cluster feature-1 (since 2026-04-24 12:00 UTC until 2026-05-01 12:00 UTC)\n",
		"Documents updated in the window: 3 cluster_events, 4 chat_history, 0 manifests, 0 documentation.",
		"### Problems: top 3 of 3 Warning events by count",
		"1. 42× (first seen 2026-04-30 11:00 UTC, last 2026-05-01 11:00 UTC) `Warning BackOff on pod/api-7d9 in namespace shop",
		"### Action outcomes: 1 succeeded, 1 failed, 1 incident",
		"- incident 2026-04-30 12:00 UTC: `bump postgres to 17 in shop: the api's migrations broke` via `gitops_change` (`" + inc.ID + "`)",
		"**Verdict:** 1 action caused an incident: `bump postgres to 17 in shop: the api's migrations broke` (`" + inc.ID + "`); 1 other action failed.\n",
	} {
		if !strings.Contains(rep.Summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, rep.Summary)
		}
	}
	for _, leak := range []string{"prod-only", "api-1a2", "ten days ago", "outside the window", "why is the api"} {
		if strings.Contains(rep.Summary, leak) {
			t.Errorf("summary names %q from another cluster or outside the window:\n%s", leak, rep.Summary)
		}
	}

	again, err := s.Report(ctx, cortex.ReportRequest{Cluster: "feature-1"})
	if err != nil || !reflect.DeepEqual(again, rep) {
		t.Fatalf("a second report differs: %v\n%s\n%s", err, rep.Summary, again.Summary)
	}
}

func TestReportWindowAndTop(t *testing.T) {
	ctx := context.Background()
	s := newService(t, cortex.Options{})
	seedHistory(t, s)
	rep, err := s.Report(ctx, cortex.ReportRequest{Cluster: "feature-1", Since: now.Add(-36 * time.Hour), Top: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Count != 42 || rep.Outcomes != (cortex.OutcomeCounts{Incident: 1}) || len(rep.Failures) != 1 {
		t.Fatalf("since 36h, top 1: problems %+v outcomes %+v failures %+v", rep.Problems, rep.Outcomes, rep.Failures)
	}
	if !strings.Contains(rep.Summary, "### Problems: top 1 of 3 Warning events") {
		t.Fatalf("summary:\n%s", rep.Summary)
	}
	rep, err = s.Report(ctx, cortex.ReportRequest{Cluster: "feature-1", Since: now.Add(-15 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcomes.Incident != 2 || rep.Documents[cortex.CollectionEvents] != 4 || !strings.Contains(rep.Summary, "**Verdict:** 2 actions caused incidents: ") {
		t.Fatalf("since 15 days: %+v\n%s", rep.Outcomes, rep.Summary)
	}
}

func TestReportOfAnUnknownClusterIsEmpty(t *testing.T) {
	s := newService(t, cortex.Options{})
	seedHistory(t, s)
	rep, err := s.Report(context.Background(), cortex.ReportRequest{Cluster: "feature-2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || len(rep.Failures) != 0 || rep.Outcomes != (cortex.OutcomeCounts{}) || rep.Documents[cortex.CollectionEvents] != 0 {
		t.Fatalf("report of an unknown cluster: %+v", rep)
	}
	for _, want := range []string{"No Warning events recorded.", "No actions recorded.",
		"**Verdict:** No incidents recorded; Cortex holds nothing of cluster feature-2 in this window (is the name right?).\n"} {
		if !strings.Contains(rep.Summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, rep.Summary)
		}
	}
}

func TestReportRefusesBadInput(t *testing.T) {
	s := newService(t, cortex.Options{})
	for name, c := range map[string]struct {
		req  cortex.ReportRequest
		want string
	}{
		"no cluster":       {cortex.ReportRequest{}, "cluster is empty"},
		"blank cluster":    {cortex.ReportRequest{Cluster: "  "}, "cluster is empty"},
		"bad UTF-8":        {cortex.ReportRequest{Cluster: "feature-\xff"}, "not valid UTF-8"},
		"since in future":  {cortex.ReportRequest{Cluster: "feature-1", Since: now.Add(time.Minute)}, "is in the future"},
		"negative top":     {cortex.ReportRequest{Cluster: "feature-1", Top: -1}, "top must be between 1 and 100"},
		"top over the max": {cortex.ReportRequest{Cluster: "feature-1", Top: 101}, "top must be between 1 and 100"},
	} {
		_, err := s.Report(context.Background(), c.req)
		if !errors.Is(err, cortex.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", name, err, c.want)
		}
	}
}

func TestReportSaysWhenItIsPartial(t *testing.T) {
	s := newService(t, cortex.Options{})
	docs := make([]cortex.Document, cortex.MaxReportDocuments+1)
	for i := range docs {
		docs[i] = cortex.Document{ID: fmt.Sprintf("ev-%04d", i), Cluster: "busy", Text: fmt.Sprintf("Warning BackOff %d", i),
			UpdatedAt: now.Add(-time.Duration(i) * time.Second)}
	}
	if _, err := s.Ingest(context.Background(), cortex.IngestRequest{Collection: cortex.CollectionEvents, Documents: docs}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Report(context.Background(), cortex.ReportRequest{Cluster: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Documents[cortex.CollectionEvents] != cortex.MaxReportDocuments || !reflect.DeepEqual(rep.Partial, []string{cortex.CollectionEvents}) ||
		!strings.Contains(rep.Summary, "Only the newest 2000 of cluster_events were read") {
		t.Fatalf("documents %v partial %v\n%s", rep.Documents, rep.Partial, rep.Summary)
	}
	// Newest first: the oldest document is the one left out.
	for _, p := range rep.Problems {
		if p.ID == docs[len(docs)-1].ID {
			t.Fatalf("the oldest document %s was read", p.ID)
		}
	}
}
