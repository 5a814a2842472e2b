package cortextest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

// RetrievalSuite runs a cortex.Service (lexical embedder, no reranker) over
// the backend's stores, all three required, and checks what a user sees:
// hybrid hits, the merged context's order, and the risk example of the
// issue. Call it like StoreSuite.
func RetrievalSuite(t *testing.T, newStores NewStores) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	service := func(t *testing.T) *cortex.Service {
		d, v, g := newStores(t)
		if d == nil || v == nil || g == nil {
			t.Skip("backend lacks a store the Service needs")
		}
		s, err := cortex.NewService(cortex.Deps{Documents: d, Vectors: v, Graph: g, Embedder: lexical.New(0)},
			cortex.Options{Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("HybridQueryAndMergedContext", func(t *testing.T) {
		ctx := context.Background()
		s := service(t)
		for _, d := range Seed {
			if _, err := s.Ingest(ctx, cortex.IngestRequest{Collection: d.Collection, Documents: []cortex.Document{d}}); err != nil {
				t.Fatal(err)
			}
		}
		e, err := s.PutKnownError(ctx, cortex.KnownError{Pattern: "CrashLoopBackOff api container", Incidents: []string{"ev1"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutSolution(ctx, cortex.Solution{Description: "raise the api memory limit", Verified: true, ErrorIDs: []string{e.ID}}); err != nil {
			t.Fatal(err)
		}
		q, err := s.Query(ctx, cortex.QueryRequest{Query: "api pod crashlooping again", TopK: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(q.Hits) < 2 || len(q.Warnings) != 0 {
			t.Fatalf("hits %+v warnings %v", q.Hits, q.Warnings)
		}
		both := false
		for _, h := range q.Hits {
			both = both || len(h.Matched) == 2
		}
		if !both {
			t.Fatalf("no hit found by both retrievers: %+v", q.Hits)
		}
		mc := q.MergedContext
		v, ev := strings.Index(mc, "## Verified solutions"), strings.Index(mc, "## Matching events")
		if v != 0 || ev < 0 || !strings.Contains(mc, "raise the api memory limit") {
			t.Fatalf("merged context:\n%s", mc)
		}
		q, err = s.Query(ctx, cortex.QueryRequest{Query: "CrashLoopBackOff", Collections: []string{cortex.CollectionEvents}, Cluster: "staging"})
		if err != nil || len(q.Hits) != 1 || q.Hits[0].ID != "ev2" {
			t.Fatalf("filtered query: %+v, %v", q.Hits, err)
		}
	})
	t.Run("RiskExample", func(t *testing.T) {
		ctx := context.Background()
		s := service(t)
		err := s.RecordOutcome(ctx, cortex.OutcomeRecord{Action: "restarting authentik during a database migration caused a 20-minute outage",
			Outcome: cortex.OutcomeIncident, Cluster: "prod", When: now.Add(-48 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Risk(ctx, cortex.RiskRequest{Action: "restart authentik/authentik-server"})
		if err != nil || r.Recommendation != cortex.Review || len(r.SimilarIncidents) != 1 || !strings.Contains(r.Reasoning, r.SimilarIncidents[0].ID) {
			t.Fatalf("authentik: %+v, %v", r, err)
		}
		r, err = s.Risk(ctx, cortex.RiskRequest{Action: "restart immich/immich"})
		if err != nil || r.Recommendation != cortex.Auto || len(r.SimilarIncidents) != 0 {
			t.Fatalf("immich: %+v, %v", r, err)
		}
	})
}
