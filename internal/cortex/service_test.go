package cortex_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newService(t testing.TB, o cortex.Options) *cortex.Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "cortex.db"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Clock == nil {
		o.Clock = func() time.Time { return now }
	}
	s, err := cortex.NewService(cortex.Deps{Documents: st, Vectors: st, Graph: st, Embedder: lexical.New(0)}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRiskExampleFromTheIssue(t *testing.T) {
	ctx := context.Background()
	s := newService(t, cortex.Options{})
	before, err := s.Risk(ctx, cortex.RiskRequest{Action: "restart authentik/authentik-server"})
	if err != nil {
		t.Fatal(err)
	}
	if before.Recommendation != cortex.Auto {
		t.Fatalf("before any history: %+v", before)
	}
	err = s.RecordOutcome(ctx, cortex.OutcomeRecord{
		Action:  "restarting authentik during a database migration caused a 20-minute outage",
		Outcome: cortex.OutcomeIncident, Cluster: "prod", When: now.Add(-72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []cortex.RiskRequest{
		{Action: "restart authentik/authentik-server"},
		{Action: "restart the authentik server", Tool: "restart_workload",
			Arguments: map[string]any{"namespace": "authentik", "name": "authentik-server", "kind": "Deployment"}},
	} {
		got, err := s.Risk(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got.Recommendation != cortex.Review || got.Class != "restart" || len(got.SimilarIncidents) != 1 {
			t.Fatalf("%+v: %+v", req, got)
		}
		inc := got.SimilarIncidents[0]
		if !strings.Contains(got.Reasoning, inc.ID) || !strings.Contains(inc.What, "20-minute outage") || inc.Outcome != cortex.OutcomeIncident {
			t.Fatalf("reasoning does not cite the incident: %+v", got)
		}
		again, _ := s.Risk(ctx, req)
		if again.Score != got.Score || again.Reasoning != got.Reasoning {
			t.Fatalf("not deterministic: %+v vs %+v", got, again)
		}
	}
	for _, req := range []cortex.RiskRequest{
		{Action: "restart immich/immich"},
		{Action: "restart immich", Tool: "restart_workload", Arguments: map[string]any{"namespace": "immich", "name": "immich-server"}},
	} {
		got, err := s.Risk(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got.Recommendation != cortex.Auto || len(got.SimilarIncidents) != 0 {
			t.Fatalf("immich took authentik's history: %+v", got)
		}
	}
}

func TestIngestRefusesBadInputAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := newService(t, cortex.Options{MaxDocumentBytes: 100})
	for name, req := range map[string]cortex.IngestRequest{
		"unknown collection":    {Collection: "nope", Documents: []cortex.Document{{ID: "a", Text: "x", Cluster: "c"}}},
		"no documents":          {Collection: cortex.CollectionDocs},
		"empty text":            {Collection: cortex.CollectionDocs, Documents: []cortex.Document{{ID: "a", Text: "ok"}, {ID: "b", Text: "  "}}},
		"oversized":             {Collection: cortex.CollectionDocs, Documents: []cortex.Document{{ID: "a", Text: "ok"}, {ID: "b", Text: strings.Repeat("x", 101)}}},
		"event without cluster": {Collection: cortex.CollectionEvents, Documents: []cortex.Document{{ID: "a", Text: "BackOff"}}},
		"wrong collection":      {Collection: cortex.CollectionDocs, Documents: []cortex.Document{{ID: "a", Text: "x", Collection: cortex.CollectionChat}}},
		"bad utf8":              {Collection: cortex.CollectionDocs, Documents: []cortex.Document{{ID: "a", Text: "\xff"}}},
	} {
		_, err := s.Ingest(ctx, req)
		if !errors.Is(err, cortex.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if n, _ := s.Count(ctx, ""); n != 0 {
		t.Fatalf("%d documents written by refused ingests", n)
	}
}

// failingVectors and failingDocs fail their writes while fail is set.
type failingVectors struct {
	cortex.VectorIndex
	fail bool
}

func (f *failingVectors) UpsertVectors(ctx context.Context, items []cortex.VectorItem) error {
	if f.fail {
		return errors.New("qdrant: connection refused")
	}
	return f.VectorIndex.UpsertVectors(ctx, items)
}

type failingDocs struct {
	cortex.DocumentStore
	fail bool
}

func (f *failingDocs) Upsert(ctx context.Context, docs []cortex.Document) error {
	if f.fail {
		return errors.New("postgres: connection refused")
	}
	return f.DocumentStore.Upsert(ctx, docs)
}

// TestSplitStoresLeaveNothingHalfVisible: with documents and vectors in two
// stores (PostgreSQL and Qdrant), a failure of either write leaves nothing a
// query can see, and retrying the same ingest completes it.
func TestSplitStoresLeaveNothingHalfVisible(t *testing.T) {
	ctx := context.Background()
	open := func() *sqlite.Store {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	docStore, vecStore := open(), open()
	docs, vecs := &failingDocs{DocumentStore: docStore}, &failingVectors{VectorIndex: vecStore}
	s, err := cortex.NewService(cortex.Deps{Documents: docs, Vectors: vecs, Graph: docStore, Embedder: lexical.New(0)}, cortex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req := cortex.IngestRequest{Collection: cortex.CollectionDocs, Documents: []cortex.Document{
		{ID: "runbook:paperless", Text: "Paperless OCR queue stuck: restart the consumer after the redis pod is ready"}}}
	visible := func() int {
		t.Helper()
		res, err := s.Query(ctx, cortex.QueryRequest{Query: "paperless OCR queue stuck consumer", TopK: 5})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Hits)
	}
	for _, c := range []struct {
		name       string
		docs, vecs bool
	}{{"vector store down", false, true}, {"document store down", true, false}} {
		docs.fail, vecs.fail = c.docs, c.vecs
		if _, err := s.Ingest(ctx, req); !errors.Is(err, cortex.ErrUnavailable) {
			t.Fatalf("%s: ingest %v, want unavailable", c.name, err)
		}
		if n := visible(); n != 0 {
			t.Fatalf("%s: a failed ingest is visible (%d hits)", c.name, n)
		}
	}
	docs.fail, vecs.fail = false, false
	if _, err := s.Ingest(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n := visible(); n != 1 {
		t.Fatalf("after the retry: %d hits, want 1", n)
	}
}
