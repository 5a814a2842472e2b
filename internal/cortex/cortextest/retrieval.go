package cortextest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

// Pipeline is what a RetrievalSuite embeds and reranks with. Each function
// is called once per subtest (so a stand-in server may live as long as the
// subtest); a nil Embedder is the built-in lexical one, a nil Reranker means
// no rerank step.
type Pipeline struct {
	Embedder func(t *testing.T) cortex.Embedder
	Reranker func(t *testing.T) cortex.Reranker
}

// RetrievalSuite runs a cortex.Service (lexical embedder, no reranker) over
// the backend's stores, all three required, and checks what a user sees:
// hybrid hits, the merged context's order, and the risk example of the
// issue. Call it like StoreSuite.
func RetrievalSuite(t *testing.T, newStores NewStores) {
	RetrievalSuiteWith(t, newStores, Pipeline{})
}

// RetrievalSuiteWith is RetrievalSuite with another embedder and optionally
// a reranker: the same assertions hold for every pipeline, and with a
// reranker every hit must also carry its "rerank" mark, in the reranker's
// order.
func RetrievalSuiteWith(t *testing.T, newStores NewStores, p Pipeline) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	service := func(t *testing.T) *cortex.Service {
		d, v, g := newStores(t)
		if d == nil || v == nil || g == nil {
			t.Skip("backend lacks a store the Service needs")
		}
		deps := cortex.Deps{Documents: d, Vectors: v, Graph: g, Embedder: lexical.New(0)}
		if p.Embedder != nil {
			deps.Embedder = p.Embedder(t)
		}
		if p.Reranker != nil {
			deps.Reranker = p.Reranker(t)
		}
		s, err := cortex.NewService(deps, cortex.Options{Clock: func() time.Time { return now }})
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
		if len(q.Hits) < 3 || len(q.Warnings) != 0 {
			t.Fatalf("hits %+v warnings %v", q.Hits, q.Warnings)
		}
		// The two crash-looping api events come first, in whatever order the
		// pipeline prefers, and the CrashLoopBackOff runbook is among the
		// hits. Fusion may rank the manifest (its "apiVersion" shares "api")
		// above the runbook; a reranker reads the texts, so with one the
		// runbook is third.
		var ids []string
		for _, h := range q.Hits {
			ids = append(ids, h.ID)
		}
		if top := slices.Sorted(slices.Values(ids[:2])); !slices.Equal(top, []string{"ev1", "ev2"}) || !slices.Contains(ids, "rb1") {
			t.Fatalf("hits %v, want ev1 and ev2 first and rb1 among them: %+v", ids, q.Hits)
		}
		if p.Reranker != nil && ids[2] != "rb1" {
			t.Fatalf("reranked hits %v, want rb1 third: %+v", ids, q.Hits)
		}
		both := false
		for i, h := range q.Hits {
			both = both || foundBy(h, "bm25") && foundBy(h, "dense")
			if reranked := slices.Contains(h.Matched, "rerank"); reranked != (p.Reranker != nil) {
				t.Fatalf("hit %s matched %v: rerank mark %v with reranker %v", h.ID, h.Matched, reranked, p.Reranker != nil)
			}
			if p.Reranker != nil && i > 0 && h.Score > q.Hits[i-1].Score {
				t.Fatalf("hits not in the reranker's order: %+v", q.Hits)
			}
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

// foundBy reports whether retriever ("bm25", "dense") found h; Matched holds
// marks like "bm25#1" and, after a rerank step, "rerank".
func foundBy(h cortex.Hit, retriever string) bool {
	return slices.ContainsFunc(h.Matched, func(m string) bool { return strings.HasPrefix(m, retriever+"#") })
}
