// Package cortextest holds backend-agnostic conformance suites, so every
// Cortex backend (embedded SQLite, PostgreSQL, Qdrant) is held to the same
// behaviour.
//
// A backend's test calls them with a constructor that returns fresh, empty
// stores; the three may be one value (Close is then called on each and must
// tolerate being called twice):
//
//	func TestConformance(t *testing.T) {
//		cortextest.StoreSuite(t, func(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
//			s := openEmptyStore(t)
//			return s, s, s
//		})
//	}
//
// A VectorIndex-only backend (Qdrant) passes nil for the other two and
// gets only the vector tests; likewise a nil VectorIndex skips them.
// RetrievalSuite runs the whole Service (hybrid retrieval, merged context,
// risk) over the given stores with the built-in lexical embedder;
// RetrievalSuiteWith runs the same checks with another embedder and an
// optional reranker (see Pipeline).
package cortextest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// NewStores returns fresh, empty stores for one subtest; any may be nil when
// the backend does not implement it.
type NewStores func(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore)

// StoreSuite checks the DocumentStore, VectorIndex and GraphStore contracts.
func StoreSuite(t *testing.T, newStores NewStores) {
	open := func(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
		d, v, g := newStores(t)
		t.Cleanup(func() {
			for _, c := range []interface{ Close() error }{d, v} {
				if c != nil && !isNil(c) {
					_ = c.Close()
				}
			}
		})
		return d, v, g
	}
	docs := func(t *testing.T) cortex.DocumentStore {
		d, _, _ := open(t)
		if d == nil {
			t.Skip("backend has no DocumentStore")
		}
		return d
	}
	vecs := func(t *testing.T) cortex.VectorIndex {
		_, v, _ := open(t)
		if v == nil {
			t.Skip("backend has no VectorIndex")
		}
		return v
	}
	graph := func(t *testing.T) cortex.GraphStore {
		_, _, g := open(t)
		if g == nil {
			t.Skip("backend has no GraphStore")
		}
		return g
	}
	t.Run("UpsertIsIdempotentAndKeepsCreation", func(t *testing.T) { testUpsertIdempotent(t, docs(t)) })
	t.Run("UpsertKeepsGivenTimesAndMetadata", func(t *testing.T) { testUpsertTimes(t, docs(t)) })
	t.Run("UpsertIsAllOrNothing", func(t *testing.T) { testUpsertAllOrNothing(t, docs(t)) })
	t.Run("KeywordRankingAndFilters", func(t *testing.T) { testKeyword(t, docs(t)) })
	t.Run("KeywordSurvivesHostileInput", func(t *testing.T) { testKeywordHostile(t, docs(t)) })
	t.Run("KeywordSeesUpdates", func(t *testing.T) { testKeywordUpdates(t, docs(t)) })
	t.Run("RecentIsNewestFirstPerCluster", func(t *testing.T) { testRecent(t, docs(t)) })
	t.Run("VectorSearch", func(t *testing.T) { testVectors(t, vecs(t)) })
	t.Run("VectorRefusals", func(t *testing.T) { testVectorRefusals(t, vecs(t)) })
	t.Run("Graph", func(t *testing.T) { testGraph(t, graph(t)) })
	t.Run("ClosedStoreSaysSo", func(t *testing.T) {
		d, v, g := open(t)
		ctx := context.Background()
		if d != nil {
			_ = d.Close()
			if err := d.Upsert(ctx, []cortex.Document{{ID: "a", Collection: cortex.CollectionDocs, Text: "x"}}); err == nil {
				t.Error("upsert after close succeeded")
			}
			if _, err := d.Keyword(ctx, "x", cortex.Filter{}, 5); err == nil {
				t.Error("keyword after close succeeded")
			}
			if _, err := d.Recent(ctx, cortex.CollectionDocs, "", time.Time{}, 5); err == nil {
				t.Error("recent after close succeeded")
			}
			if g != nil {
				if _, err := g.ListKnownErrors(ctx); err == nil && isSame(d, g) {
					t.Error("list known errors after close succeeded")
				}
			}
		}
		if v != nil {
			_ = v.Close()
			if _, err := v.Search(ctx, []float32{1, 0}, cortex.Filter{}, 5); err == nil {
				t.Error("vector search after close succeeded")
			}
		}
	})
}

func isNil(c any) bool {
	defer func() { _ = recover() }()
	return c == nil || fmt.Sprint(c) == "<nil>"
}

func isSame(a, b any) bool {
	defer func() { _ = recover() }()
	return any(a) == any(b)
}

// Stamp is a fixed, microsecond-precise time (what every backend can hold).
var Stamp = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

func ids(sc []cortex.Scored) []string {
	out := make([]string, len(sc))
	for i, s := range sc {
		out[i] = s.ID
	}
	return out
}

func testUpsertIdempotent(t *testing.T, s cortex.DocumentStore) {
	ctx := context.Background()
	d := cortex.Document{ID: "ev-1", Collection: cortex.CollectionEvents, Cluster: "prod", Text: "Back-off restarting failed container"}
	if err := s.Upsert(ctx, []cortex.Document{d}); err != nil {
		t.Fatal(err)
	}
	first, ok, err := s.Get(ctx, d.Collection, d.ID)
	if err != nil || !ok {
		t.Fatalf("get after upsert: ok=%v err=%v", ok, err)
	}
	if first.CreatedAt.IsZero() || first.UpdatedAt.IsZero() {
		t.Fatalf("store did not stamp times: %+v", first)
	}
	time.Sleep(5 * time.Millisecond)
	d.Text = "Back-off restarting failed container api"
	for range 3 {
		if err := s.Upsert(ctx, []cortex.Document{d}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Count(ctx, cortex.CollectionEvents); err != nil || n != 1 {
		t.Fatalf("count after repeated upsert = %d, %v; want 1", n, err)
	}
	got, _, _ := s.Get(ctx, d.Collection, d.ID)
	if got.Text != d.Text || got.Cluster != "prod" {
		t.Fatalf("got %+v", got)
	}
	if !got.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("creation time changed from %v to %v", first.CreatedAt, got.CreatedAt)
	}
	if !got.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("update time did not move: %v then %v", first.UpdatedAt, got.UpdatedAt)
	}
	// The same id in another collection is another document.
	if err := s.Upsert(ctx, []cortex.Document{{ID: "ev-1", Collection: cortex.CollectionChat, Cluster: "prod", Text: "other"}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(ctx, ""); n != 2 {
		t.Fatalf("count of all = %d, want 2", n)
	}
	if _, ok, err := s.Get(ctx, cortex.CollectionDocs, "ev-1"); ok || err != nil {
		t.Fatalf("get of a missing document: ok=%v err=%v", ok, err)
	}
}

func testUpsertTimes(t *testing.T, s cortex.DocumentStore) {
	ctx := context.Background()
	d := cortex.Document{ID: "o-1", Collection: cortex.CollectionChat, Cluster: "feature-7", Text: "restart caused outage",
		Metadata:  map[string]string{"kind": "outcome", "outcome": "incident", "ünïcode": "✓"},
		CreatedAt: Stamp, UpdatedAt: Stamp.Add(time.Hour)}
	if err := s.Upsert(ctx, []cortex.Document{d}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, d.Collection, d.ID)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if !got.CreatedAt.Equal(d.CreatedAt) || !got.UpdatedAt.Equal(d.UpdatedAt) {
		t.Fatalf("times %v/%v, want %v/%v", got.CreatedAt, got.UpdatedAt, d.CreatedAt, d.UpdatedAt)
	}
	if len(got.Metadata) != 3 || got.Metadata["ünïcode"] != "✓" || got.Metadata["outcome"] != "incident" {
		t.Fatalf("metadata %v", got.Metadata)
	}
	// A cluster given only in metadata is the document's cluster.
	if err := s.Upsert(ctx, []cortex.Document{{ID: "o-2", Collection: cortex.CollectionChat, Text: "x", Metadata: map[string]string{"cluster": "edge"}}}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(ctx, cortex.CollectionChat, "o-2"); got.Cluster != "edge" {
		t.Fatalf("cluster from metadata: got %q", got.Cluster)
	}
}

func testUpsertAllOrNothing(t *testing.T, s cortex.DocumentStore) {
	ctx := context.Background()
	bad := []cortex.Document{
		{ID: "ok", Collection: cortex.CollectionDocs, Text: "fine"},
		{ID: "", Collection: cortex.CollectionDocs, Text: "no id"},
	}
	if err := s.Upsert(ctx, bad); err == nil {
		t.Fatal("upsert with an empty id succeeded")
	}
	for _, d := range []cortex.Document{
		{ID: "x", Collection: "", Text: "t"},
		{ID: "x", Collection: cortex.CollectionDocs, Text: "nul\x00byte"},
		{ID: "x", Collection: cortex.CollectionDocs, Text: "bad \xff utf8"},
		{ID: strings.Repeat("x", 600), Collection: cortex.CollectionDocs, Text: "t"},
		{ID: "x", Collection: cortex.CollectionDocs, Text: "t", Metadata: map[string]string{"k": "v\x00"}},
	} {
		if err := s.Upsert(ctx, []cortex.Document{d}); err == nil {
			t.Errorf("upsert of %q/%q succeeded", d.ID, d.Text)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Upsert(cctx, []cortex.Document{{ID: "y", Collection: cortex.CollectionDocs, Text: "t"}}); err == nil {
		t.Fatal("upsert with a cancelled context succeeded")
	}
	if n, _ := s.Count(ctx, ""); n != 0 {
		t.Fatalf("%d documents written by failed upserts", n)
	}
	if err := s.Upsert(ctx, nil); err != nil {
		t.Fatalf("empty upsert: %v", err)
	}
}

// Seed is a small corpus that keyword and retrieval tests share.
var Seed = []cortex.Document{
	{ID: "ev1", Collection: cortex.CollectionEvents, Cluster: "prod", Text: "Back-off restarting failed container api in pod api-7d9 (CrashLoopBackOff)"},
	{ID: "ev2", Collection: cortex.CollectionEvents, Cluster: "staging", Text: "Back-off restarting failed container api in pod api-5c1 (CrashLoopBackOff)"},
	{ID: "ev3", Collection: cortex.CollectionEvents, Cluster: "prod", Text: "Readiness probe failed: HTTP probe failed with statuscode: 503"},
	{ID: "rb1", Collection: cortex.CollectionDocs, Text: "Runbook: a pod in CrashLoopBackOff is restarting. Check the container logs, then the memory limit. CrashLoopBackOff usually means the process exits."},
	{ID: "ch1", Collection: cortex.CollectionChat, Cluster: "prod", Text: "Scaled deployment web to 0 replicas; outage followed", Metadata: map[string]string{"outcome": "incident"}},
	{ID: "mf1", Collection: cortex.CollectionManifest, Cluster: "prod", Text: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3"},
}

func testKeyword(t *testing.T, s cortex.DocumentStore) {
	ctx := context.Background()
	if err := s.Upsert(ctx, Seed); err != nil {
		t.Fatal(err)
	}
	got, err := s.Keyword(ctx, "why does my pod keep crashlooping?? CrashLoopBackOff restarting", cortex.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Ranking among the three is the backend's business; finding them is not.
	if len(got) < 3 || !slices.Contains(ids(got[:3]), "rb1") || !slices.Contains(ids(got[:3]), "ev1") || !slices.Contains(ids(got[:3]), "ev2") {
		t.Fatalf("got %v, want rb1, ev1 and ev2 first", ids(got))
	}
	for i, g := range got {
		if g.Score <= 0 {
			t.Fatalf("score %d is %v, want > 0", i, g.Score)
		}
		if i > 0 && g.Score > got[i-1].Score {
			t.Fatalf("not sorted by score: %+v", got)
		}
		if g.Collection == "" {
			t.Fatalf("hit %d has no collection", i)
		}
	}
	got, _ = s.Keyword(ctx, "CrashLoopBackOff", cortex.Filter{Collections: []string{cortex.CollectionEvents}}, 10)
	if !slices.Equal(sorted(ids(got)), []string{"ev1", "ev2"}) {
		t.Fatalf("events only: %v", ids(got))
	}
	got, _ = s.Keyword(ctx, "CrashLoopBackOff", cortex.Filter{Collections: []string{cortex.CollectionEvents}, Cluster: "prod"}, 10)
	if !slices.Equal(ids(got), []string{"ev1"}) {
		t.Fatalf("prod events only: %v", ids(got))
	}
	got, _ = s.Keyword(ctx, "CrashLoopBackOff", cortex.Filter{Collections: []string{cortex.CollectionEvents, cortex.CollectionDocs}}, 10)
	if !slices.Equal(sorted(ids(got)), []string{"ev1", "ev2", "rb1"}) {
		t.Fatalf("events and docs: %v", ids(got))
	}
	got, _ = s.Keyword(ctx, "CrashLoopBackOff", cortex.Filter{}, 1)
	if len(got) != 1 {
		t.Fatalf("k=1 gave %d hits", len(got))
	}
	for _, q := range []string{"", "   ", "?!"} {
		if got, err := s.Keyword(ctx, q, cortex.Filter{}, 5); err != nil || len(got) != 0 {
			t.Errorf("query %q: %v, %v; want nothing", q, ids(got), err)
		}
	}
	if got, err := s.Keyword(ctx, "CrashLoopBackOff", cortex.Filter{}, 0); err != nil || len(got) != 0 {
		t.Errorf("k=0: %v, %v", ids(got), err)
	}
	if _, err := s.Keyword(ctx, "x", cortex.Filter{}, -1); err == nil {
		t.Error("negative k accepted")
	}
	if got, _ := s.Keyword(ctx, "zebra unicorn", cortex.Filter{}, 5); len(got) != 0 {
		t.Errorf("unrelated words matched %v", ids(got))
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func testKeywordHostile(t *testing.T, s cortex.DocumentStore) {
	ctx := context.Background()
	if err := s.Upsert(ctx, Seed); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`"unbalanced`, `AND OR NOT`, `NEAR(a b)`, `col:val`, `*`, `a*`, `^start`, `'; DROP TABLE documents; --`,
		`(((`, `!@#$%^&*()`, `\x00`, strings.Repeat("crash ", 500), "ümlaut ñ 日本語", `probe -failed`, `{}[]`,
	} {
		if _, err := s.Keyword(ctx, q, cortex.Filter{}, 5); err != nil {
			t.Errorf("query %q: %v", q, err)
		}
	}
	if n, _ := s.Count(ctx, ""); n != len(Seed) {
		t.Fatalf("count %d after hostile queries, want %d", n, len(Seed))
	}
}

func testKeywordUpdates(t *testing.T, s cortex.DocumentStore) {
	ctx := context.Background()
	d := cortex.Document{ID: "u", Collection: cortex.CollectionDocs, Text: "original walrus text"}
	if err := s.Upsert(ctx, []cortex.Document{d}); err != nil {
		t.Fatal(err)
	}
	d.Text = "replaced narwhal text"
	if err := s.Upsert(ctx, []cortex.Document{d}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Keyword(ctx, "walrus", cortex.Filter{}, 5); len(got) != 0 {
		t.Fatalf("old text still matches: %v", ids(got))
	}
	if got, _ := s.Keyword(ctx, "narwhal", cortex.Filter{}, 5); !slices.Equal(ids(got), []string{"u"}) {
		t.Fatalf("new text: %v", ids(got))
	}
}

func testRecent(t *testing.T, s cortex.DocumentStore) {
	ctx := context.Background()
	at := func(h int) time.Time { return Stamp.Add(time.Duration(h) * time.Hour) }
	ev := func(id, cluster string, updated time.Time) cortex.Document {
		return cortex.Document{ID: id, Collection: cortex.CollectionEvents, Cluster: cluster, Text: "Warning BackOff on " + id,
			Metadata: map[string]string{"kind": "event", "count": "3"}, CreatedAt: Stamp.Add(-48 * time.Hour), UpdatedAt: updated}
	}
	all := []cortex.Document{
		ev("a", "feature-1", at(0)), // exactly at since: included
		ev("b", "feature-1", at(2)),
		ev("d", "feature-1", at(1)), // same time as c: c first, by id
		ev("c", "feature-1", at(1)),
		ev("old", "feature-1", at(-1)),
		ev("p", "prod", at(3)),
		{ID: "chat", Collection: cortex.CollectionChat, Cluster: "feature-1", Text: "restart api", UpdatedAt: at(3)},
		{ID: "bare", Collection: cortex.CollectionEvents, Text: "an event of no cluster", UpdatedAt: at(3)},
	}
	if err := s.Upsert(ctx, all); err != nil {
		t.Fatal(err)
	}
	recent := func(collection, cluster string, since time.Time, limit int) []string {
		t.Helper()
		got, err := s.Recent(ctx, collection, cluster, since, limit)
		if err != nil {
			t.Fatalf("recent %s %q %v %d: %v", collection, cluster, since, limit, err)
		}
		out := make([]string, len(got))
		for i, d := range got {
			out[i] = d.ID
		}
		return out
	}
	if got := recent(cortex.CollectionEvents, "feature-1", Stamp, 10); !slices.Equal(got, []string{"b", "c", "d", "a"}) {
		t.Fatalf("feature-1 events since the stamp: %v, want b c d a", got)
	}
	if got := recent(cortex.CollectionEvents, "feature-1", Stamp, 2); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("limit 2: %v", got)
	}
	if got := recent(cortex.CollectionEvents, "feature-1", time.Time{}, 10); !slices.Equal(got, []string{"b", "c", "d", "a", "old"}) {
		t.Fatalf("since the zero time: %v", got)
	}
	if got := recent(cortex.CollectionEvents, "feature-1", at(2).Add(time.Microsecond), 10); len(got) != 0 {
		t.Fatalf("since after the newest: %v", got)
	}
	if got := recent(cortex.CollectionEvents, "prod", Stamp, 10); !slices.Equal(got, []string{"p"}) {
		t.Fatalf("prod events: %v", got)
	}
	if got := recent(cortex.CollectionEvents, "", Stamp, 10); !slices.Equal(got, []string{"bare"}) {
		t.Fatalf("events of no cluster: %v", got)
	}
	if got := recent(cortex.CollectionChat, "feature-1", Stamp, 10); !slices.Equal(got, []string{"chat"}) {
		t.Fatalf("feature-1 chat: %v", got)
	}
	if got := recent(cortex.CollectionEvents, "nowhere", time.Time{}, 10); len(got) != 0 {
		t.Fatalf("unknown cluster: %v", got)
	}
	if got := recent(cortex.CollectionEvents, "feature-1", Stamp, 0); len(got) != 0 {
		t.Fatalf("limit 0: %v", got)
	}
	if _, err := s.Recent(ctx, cortex.CollectionEvents, "feature-1", Stamp, -1); err == nil {
		t.Error("negative limit accepted")
	}
	// Documents come back whole, times as stored.
	got, err := s.Recent(ctx, cortex.CollectionEvents, "feature-1", at(2), 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("recent b: %v, %v", got, err)
	}
	want := all[1]
	if d := got[0]; d.Collection != want.Collection || d.Text != want.Text || d.Cluster != want.Cluster || d.Metadata["count"] != "3" ||
		!d.CreatedAt.Equal(want.CreatedAt) || !d.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("recent returned %+v, want %+v", d, want)
	}
	// An update moves a document to the front.
	moved := ev("old", "feature-1", at(5))
	if err := s.Upsert(ctx, []cortex.Document{moved}); err != nil {
		t.Fatal(err)
	}
	if got := recent(cortex.CollectionEvents, "feature-1", Stamp, 10); !slices.Equal(got, []string{"old", "b", "c", "d", "a"}) {
		t.Fatalf("after updating old: %v", got)
	}
}

func testVectors(t *testing.T, v cortex.VectorIndex) {
	ctx := context.Background()
	if got, err := v.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 5); err != nil || len(got) != 0 {
		t.Fatalf("search of an empty index: %v, %v", got, err)
	}
	items := []cortex.VectorItem{
		{Collection: cortex.CollectionEvents, ID: "a", Cluster: "prod", Vector: []float32{1, 0, 0}},
		{Collection: cortex.CollectionEvents, ID: "b", Cluster: "prod", Vector: []float32{3, 3, 0}}, // not unit: the index normalises
		{Collection: cortex.CollectionDocs, ID: "c", Vector: []float32{0, 1, 0}},
		{Collection: cortex.CollectionEvents, ID: "d", Cluster: "staging", Vector: []float32{0, 0, 1}},
		{Collection: cortex.CollectionEvents, ID: "e", Cluster: "prod", Vector: []float32{-1, 0, 0}},
	}
	if err := v.UpsertVectors(ctx, items); err != nil {
		t.Fatal(err)
	}
	got, err := v.Search(ctx, []float32{2, 0, 0}, cortex.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b"}
	if len(got) != 5 || !slices.Equal(ids(got[:2]), want) || got[4].ID != "e" {
		t.Fatalf("order %v", ids(got))
	}
	for i, w := range []float64{1, math.Sqrt(0.5)} {
		if math.Abs(got[i].Score-w) > 1e-3 {
			t.Fatalf("score %d = %v, want %v", i, got[i].Score, w)
		}
	}
	if math.Abs(got[4].Score+1) > 1e-3 {
		t.Fatalf("opposite vector scored %v, want -1", got[4].Score)
	}
	if got[0].Collection != cortex.CollectionEvents {
		t.Fatalf("hit collection %q", got[0].Collection)
	}
	got, _ = v.Search(ctx, []float32{1, 1, 1}, cortex.Filter{Collections: []string{cortex.CollectionDocs}}, 10)
	if !slices.Equal(ids(got), []string{"c"}) {
		t.Fatalf("docs only: %v", ids(got))
	}
	got, _ = v.Search(ctx, []float32{1, 1, 1}, cortex.Filter{Cluster: "staging"}, 10)
	if !slices.Equal(ids(got), []string{"d"}) {
		t.Fatalf("staging only: %v", ids(got))
	}
	got, _ = v.Search(ctx, []float32{1, 1, 1}, cortex.Filter{Cluster: "nowhere"}, 10)
	if len(got) != 0 {
		t.Fatalf("unknown cluster: %v", ids(got))
	}
	got, _ = v.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 2)
	if len(got) != 2 {
		t.Fatalf("k=2 gave %d", len(got))
	}
	// Upsert replaces: "a" moves to the other side.
	if err := v.UpsertVectors(ctx, []cortex.VectorItem{{Collection: cortex.CollectionEvents, ID: "a", Cluster: "prod", Vector: []float32{0, 0, -1}}}); err != nil {
		t.Fatal(err)
	}
	got, _ = v.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 10)
	if len(got) != 5 || got[0].ID != "b" {
		t.Fatalf("after replacing a: %v", ids(got))
	}
	if err := v.UpsertVectors(ctx, nil); err != nil {
		t.Fatalf("empty upsert: %v", err)
	}
}

func testVectorRefusals(t *testing.T, v cortex.VectorIndex) {
	ctx := context.Background()
	if err := v.UpsertVectors(ctx, []cortex.VectorItem{{Collection: cortex.CollectionDocs, ID: "a", Vector: []float32{1, 0}}}); err != nil {
		t.Fatal(err)
	}
	for name, items := range map[string][]cortex.VectorItem{
		"other dimension": {{Collection: cortex.CollectionDocs, ID: "b", Vector: []float32{1, 0, 0}}},
		"mixed batch":     {{Collection: cortex.CollectionDocs, ID: "b", Vector: []float32{1, 0}}, {Collection: cortex.CollectionDocs, ID: "c", Vector: []float32{1}}},
		"zero vector":     {{Collection: cortex.CollectionDocs, ID: "b", Vector: []float32{0, 0}}},
		"NaN":             {{Collection: cortex.CollectionDocs, ID: "b", Vector: []float32{float32(math.NaN()), 1}}},
		"empty id":        {{Collection: cortex.CollectionDocs, ID: "", Vector: []float32{1, 0}}},
	} {
		if err := v.UpsertVectors(ctx, items); err == nil {
			t.Errorf("%s: upsert succeeded", name)
		}
	}
	got, err := v.Search(ctx, []float32{0, 1}, cortex.Filter{}, 10)
	if err != nil || !slices.Equal(ids(got), []string{"a"}) {
		t.Fatalf("after refused upserts: %v, %v (nothing of a refused batch may be written)", ids(got), err)
	}
	if _, err := v.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 5); err == nil {
		t.Error("query of another dimension accepted")
	}
	if _, err := v.Search(ctx, []float32{0, 0}, cortex.Filter{}, 5); err == nil {
		t.Error("zero query accepted")
	}
	if _, err := v.Search(ctx, []float32{1, 0}, cortex.Filter{}, -1); err == nil {
		t.Error("negative k accepted")
	}
}

func testGraph(t *testing.T, g cortex.GraphStore) {
	ctx := context.Background()
	e, err := g.PutKnownError(ctx, cortex.KnownError{Pattern: "OOMKilled: container exceeded memory limit", Summary: "memory", Cluster: "prod", Incidents: []string{"ev1"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == "" || e.CreatedAt.IsZero() || !slices.Equal(e.Incidents, []string{"ev1"}) {
		t.Fatalf("put known error returned %+v", e)
	}
	// A second put keeps the creation time and adds incidents, never replaces them.
	e2, err := g.PutKnownError(ctx, cortex.KnownError{ID: e.ID, Pattern: e.Pattern, Summary: "memory limit too low", Incidents: []string{"ev2", "ev1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !e2.CreatedAt.Equal(e.CreatedAt) || e2.Summary != "memory limit too low" || !slices.Equal(sorted(e2.Incidents), []string{"ev1", "ev2"}) {
		t.Fatalf("second put returned %+v", e2)
	}
	if _, err := g.PutKnownError(ctx, cortex.KnownError{ID: "p", Pattern: ""}); err == nil {
		t.Error("known error without pattern accepted")
	}
	other, err := g.PutKnownError(ctx, cortex.KnownError{ID: "img", Pattern: "ImagePullBackOff"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := g.ListKnownErrors(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v, %v", list, err)
	}

	s1, err := g.PutSolution(ctx, cortex.Solution{Description: "raise memory limit to 512Mi", ErrorIDs: []string{e.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if s1.ID == "" || s1.Verified || !slices.Equal(s1.ErrorIDs, []string{e.ID}) {
		t.Fatalf("put solution returned %+v", s1)
	}
	s2, err := g.PutSolution(ctx, cortex.Solution{ID: "s2", Description: "restart the pod"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.PutSolution(ctx, cortex.Solution{ID: "s3", Description: "x", ErrorIDs: []string{"missing"}}); err == nil {
		t.Error("solution linked to a missing error accepted")
	}
	if _, err := g.PutSolution(ctx, cortex.Solution{ID: "s4"}); err == nil {
		t.Error("solution without description accepted")
	}
	for range 2 {
		if err := g.Link(ctx, e.ID, s2.ID); err != nil {
			t.Fatalf("link (twice is a no-op): %v", err)
		}
	}
	if err := g.Link(ctx, "missing", s2.ID); !errors.Is(err, cortex.ErrNotFound) && err == nil {
		t.Error("link from a missing error accepted")
	}
	if err := g.Link(ctx, e.ID, "missing"); err == nil {
		t.Error("link to a missing solution accepted")
	}
	if err := g.SetVerified(ctx, s2.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := g.SetVerified(ctx, "missing", true); err == nil {
		t.Error("verifying a missing solution succeeded")
	}
	sols, err := g.SolutionsFor(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sols) != 2 || sols[0].ID != s2.ID || !sols[0].Verified || sols[1].Verified {
		t.Fatalf("solutions (verified first): %+v", sols)
	}
	if sols, err := g.SolutionsFor(ctx, other.ID); err != nil || len(sols) != 0 {
		t.Fatalf("solutions of an error with none: %v, %v", sols, err)
	}
	if sols, err := g.SolutionsFor(ctx, "unknown"); err != nil || len(sols) != 0 {
		t.Fatalf("solutions of an unknown error: %v, %v", sols, err)
	}
	for range 2 {
		if err := g.AddIncident(ctx, other.ID, "ev9"); err != nil {
			t.Fatalf("add incident (twice is a no-op): %v", err)
		}
	}
	if err := g.AddIncident(ctx, "missing", "ev9"); err == nil {
		t.Error("incident on a missing error accepted")
	}
	list, _ = g.ListKnownErrors(ctx)
	for _, k := range list {
		if k.ID == other.ID && !slices.Equal(k.Incidents, []string{"ev9"}) {
			t.Fatalf("incidents of %s: %v", k.ID, k.Incidents)
		}
	}
}
