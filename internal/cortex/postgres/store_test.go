package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &srv) }

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), srv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ids(sc []cortex.Scored) []string {
	out := make([]string, len(sc))
	for i, s := range sc {
		out[i] = s.Collection + "/" + s.ID
	}
	return out
}

func TestOpenIsIdempotentAndConcurrent(t *testing.T) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM cortex_schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("%d migrations recorded, want 4", n)
	}
}

func TestOpenBadDSNHidesPassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:s3cret@127.0.0.1:1/x?sslmode=bogus")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = Open(ctx, "postgres://u:s3cret@127.0.0.1:1/x?sslmode=disable")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}

func TestUpsertIsIdempotentAndKeepsCreation(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	doc := cortex.Document{ID: "e1", Collection: cortex.CollectionEvents, Text: "Pod web-1 OOMKilled",
		Metadata: map[string]string{"kind": "event", "cluster": "prod"}}
	if err := s.Upsert(ctx, []cortex.Document{doc}); err != nil {
		t.Fatal(err)
	}
	first, ok, err := s.Get(ctx, doc.Collection, doc.ID)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if first.Cluster != "prod" || first.Text != doc.Text || first.Metadata["kind"] != "event" || first.CreatedAt.IsZero() {
		t.Fatalf("got %+v", first)
	}
	time.Sleep(2 * time.Millisecond)
	doc.Text = "Pod web-1 OOMKilled again"
	if err := s.Upsert(ctx, []cortex.Document{doc, doc}); err != nil {
		t.Fatal(err)
	}
	second, _, _ := s.Get(ctx, doc.Collection, doc.ID)
	if second.Text != doc.Text || !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("first %+v second %+v", first, second)
	}
	if n, _ := s.Count(ctx, doc.Collection); n != 1 {
		t.Fatalf("count = %d", n)
	}
	// The same id in another collection is another document.
	other := doc
	other.Collection = cortex.CollectionDocs
	if err := s.Upsert(ctx, []cortex.Document{other}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(ctx, ""); n != 2 {
		t.Fatalf("count all = %d", n)
	}
	if _, ok, err := s.Get(ctx, cortex.CollectionChat, "e1"); ok || err != nil {
		t.Fatalf("missing doc: %v %v", ok, err)
	}
}

func TestUpsertKeepsGivenTimes(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	at := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	if err := s.Upsert(ctx, []cortex.Document{{ID: "a", Collection: "c", Text: "t", CreatedAt: at, UpdatedAt: at}}); err != nil {
		t.Fatal(err)
	}
	d, _, _ := s.Get(ctx, "c", "a")
	want := at.UTC().Truncate(time.Microsecond)
	if !d.CreatedAt.Equal(want) || !d.UpdatedAt.Equal(want) || d.CreatedAt.Location() != time.UTC {
		t.Fatalf("times %v %v, want %v", d.CreatedAt, d.UpdatedAt, want)
	}
}

func TestUpsertIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	bad := []cortex.Document{
		{ID: "ok", Collection: "c", Text: "fine"},
		{ID: "", Collection: "c", Text: "no id"},
	}
	if err := s.Upsert(ctx, bad); err == nil {
		t.Fatal("upsert with an empty id succeeded")
	}
	for _, d := range [][]cortex.Document{
		{{ID: "x", Collection: "", Text: "t"}},
		{{ID: "x", Collection: "c", Text: "nul\x00byte"}},
		{{ID: "x", Collection: "c", Text: "bad \xff utf8"}},
		{{ID: strings.Repeat("x", 600), Collection: "c", Text: "t"}},
		{{ID: "x", Collection: "c", Text: "t", Metadata: map[string]string{"k": "v\x00"}}},
	} {
		if err := s.Upsert(ctx, d); err == nil {
			t.Errorf("upsert %q succeeded", d[0].Text)
		}
	}
	// A failure inside the database half-way through a batch must roll back
	// the documents written before it; a trigger stands for such a failure.
	if _, err := s.pool.Exec(ctx, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN IF NEW.id = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END$$;
		CREATE TRIGGER refuse BEFORE INSERT ON cortex_documents FOR EACH ROW EXECUTE FUNCTION refuse()`); err != nil {
		t.Fatal(err)
	}
	err := s.Upsert(ctx, []cortex.Document{{ID: "y", Collection: "c", Text: "t"}, {ID: "poison", Collection: "c", Text: "t"}})
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("upsert through a failing trigger: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Upsert(cctx, []cortex.Document{{ID: "y", Collection: "c", Text: "t"}}); err == nil {
		t.Fatal("upsert with a cancelled context succeeded")
	}
	if n, _ := s.Count(ctx, ""); n != 0 {
		t.Fatalf("%d documents written by failed upserts", n)
	}
	if err := s.Upsert(ctx, nil); err != nil {
		t.Fatalf("empty upsert: %v", err)
	}
}

func seed(t *testing.T, s *Store) {
	t.Helper()
	docs := []cortex.Document{
		{ID: "ev1", Collection: cortex.CollectionEvents, Cluster: "prod", Text: "Back-off restarting failed container api in pod api-7d9 (CrashLoopBackOff)"},
		{ID: "ev2", Collection: cortex.CollectionEvents, Cluster: "staging", Text: "Back-off restarting failed container api in pod api-5c1 (CrashLoopBackOff)"},
		{ID: "ev3", Collection: cortex.CollectionEvents, Cluster: "prod", Text: "Readiness probe failed: HTTP probe failed with statuscode: 503"},
		{ID: "rb1", Collection: cortex.CollectionDocs, Text: "Runbook: a pod in CrashLoopBackOff is restarting. Check the container logs, then the memory limit. CrashLoopBackOff usually means the process exits."},
		{ID: "ch1", Collection: cortex.CollectionChat, Cluster: "prod", Text: "Scaled deployment web to 0 replicas; outage followed", Metadata: map[string]string{"outcome": "incident"}},
		{ID: "mf1", Collection: cortex.CollectionManifest, Cluster: "prod", Text: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3"},
	}
	if err := s.Upsert(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
}

func TestKeywordRankingAndFilters(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	seed(t, s)

	// A tired operator's question: most words match nothing, OR still finds.
	got, err := s.Keyword(ctx, "why does my pod keep crashlooping?? CrashLoopBackOff restarting", cortex.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 3 || got[0].ID != "rb1" {
		t.Fatalf("got %v", ids(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Score > got[i-1].Score {
			t.Fatalf("not sorted by score: %+v", got)
		}
	}
	for _, g := range got {
		if g.Score <= 0 {
			t.Fatalf("non-positive score %+v", g)
		}
	}
	// Stemming: "restarts" matches "restarting".
	got, _ = s.Keyword(ctx, "restarts", cortex.Filter{Collections: []string{cortex.CollectionEvents}}, 10)
	if strings.Join(ids(got), ",") != "cluster_events/ev1,cluster_events/ev2" && strings.Join(ids(got), ",") != "cluster_events/ev2,cluster_events/ev1" {
		t.Fatalf("collection filter: %v", ids(got))
	}
	got, _ = s.Keyword(ctx, "CrashLoopBackOff", cortex.Filter{Cluster: "prod"}, 10)
	if strings.Join(ids(got), ",") != "cluster_events/ev1" {
		t.Fatalf("cluster filter: %v", ids(got))
	}
	got, _ = s.Keyword(ctx, "crashloopbackoff", cortex.Filter{Collections: []string{cortex.CollectionDocs, cortex.CollectionChat}, Cluster: ""}, 1)
	if strings.Join(ids(got), ",") != "documentation/rb1" {
		t.Fatalf("k=1 and two collections: %v", ids(got))
	}
	got, _ = s.Keyword(ctx, "replicas", cortex.Filter{Collections: []string{"nope"}}, 10)
	if len(got) != 0 {
		t.Fatalf("unknown collection: %v", ids(got))
	}
}

func TestKeywordSurvivesHostileInput(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	seed(t, s)
	for _, q := range []string{
		"", "   ", "the a of", "!!!", "& | ! ( ) : * ' \\ < > <->", "api:* & !web", "'; DROP TABLE cortex_documents; --",
		"pod\x00api", strings.Repeat("crash ", 5000), "\xff\xfe", "名前空間 ポッド", "probe:503",
	} {
		if _, err := s.Keyword(ctx, q, cortex.Filter{}, 5); err != nil {
			t.Errorf("Keyword(%.40q): %v", q, err)
		}
	}
	got, _ := s.Keyword(ctx, "probe:503", cortex.Filter{}, 5)
	if len(got) == 0 || got[0].ID != "ev3" {
		t.Fatalf("probe:503 → %v", ids(got))
	}
	got, _ = s.Keyword(ctx, "api-7d9", cortex.Filter{}, 5)
	if len(got) == 0 || got[0].ID != "ev1" {
		t.Fatalf("api-7d9 → %v", ids(got))
	}
	if n, _ := s.Count(ctx, ""); n != 6 {
		t.Fatalf("count = %d after hostile queries", n)
	}
	if got, err := s.Keyword(ctx, "pod", cortex.Filter{}, 0); err != nil || len(got) != 0 {
		t.Fatalf("k=0: %v %v", got, err)
	}
	if _, err := s.Keyword(ctx, "pod", cortex.Filter{}, -1); err == nil {
		t.Fatal("k=-1 accepted")
	}
}

func TestKeywordSeesUpdates(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	d := cortex.Document{ID: "d", Collection: "c", Text: "ImagePullBackOff for registry"}
	_ = s.Upsert(ctx, []cortex.Document{d})
	d.Text = "certificate expired"
	_ = s.Upsert(ctx, []cortex.Document{d})
	if got, _ := s.Keyword(ctx, "ImagePullBackOff", cortex.Filter{}, 5); len(got) != 0 {
		t.Fatalf("stale text still indexed: %v", ids(got))
	}
	if got, _ := s.Keyword(ctx, "certificates", cortex.Filter{}, 5); len(got) != 1 {
		t.Fatalf("new text not indexed: %v", ids(got))
	}
}

func TestGraph(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	e, err := s.PutKnownError(ctx, cortex.KnownError{Pattern: "OOMKilled", Summary: "container ran out of memory", Cluster: "prod", Incidents: []string{"ev1"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == "" || e.CreatedAt.IsZero() || len(e.Incidents) != 1 {
		t.Fatalf("put: %+v", e)
	}
	// Updating keeps creation time and adds incidents.
	e2, err := s.PutKnownError(ctx, cortex.KnownError{ID: e.ID, Pattern: "OOMKilled", Summary: "out of memory", Incidents: []string{"ev2", "ev1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !e2.CreatedAt.Equal(e.CreatedAt) || strings.Join(e2.Incidents, ",") != "ev1,ev2" || e2.Summary != "out of memory" {
		t.Fatalf("update: %+v", e2)
	}
	if err := s.AddIncident(ctx, e.ID, "ev3"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddIncident(ctx, e.ID, "ev3"); err != nil {
		t.Fatalf("second AddIncident: %v", err)
	}
	if err := s.AddIncident(ctx, "nope", "ev3"); !errors.Is(err, cortex.ErrNotFound) {
		t.Fatalf("AddIncident unknown error: %v", err)
	}

	raise, err := s.PutSolution(ctx, cortex.Solution{ID: "raise", Description: "raise the memory limit", ErrorIDs: []string{e.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if raise.Verified || strings.Join(raise.ErrorIDs, ",") != e.ID {
		t.Fatalf("put solution: %+v", raise)
	}
	if _, err := s.PutSolution(ctx, cortex.Solution{ID: "restart", Description: "restart the pod"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Link(ctx, e.ID, "restart"); err != nil {
		t.Fatal(err)
	}
	if err := s.Link(ctx, e.ID, "restart"); err != nil {
		t.Fatalf("second Link: %v", err)
	}
	if err := s.Link(ctx, e.ID, "nope"); !errors.Is(err, cortex.ErrNotFound) {
		t.Fatalf("Link unknown solution: %v", err)
	}
	if err := s.Link(ctx, "nope", "restart"); !errors.Is(err, cortex.ErrNotFound) {
		t.Fatalf("Link unknown error: %v", err)
	}
	if _, err := s.PutSolution(ctx, cortex.Solution{ID: "x", Description: "d", ErrorIDs: []string{"nope"}}); !errors.Is(err, cortex.ErrNotFound) {
		t.Fatalf("PutSolution with unknown error: %v", err)
	}
	if sols, _ := s.SolutionsFor(ctx, e.ID); len(sols) != 2 {
		t.Fatalf("failed PutSolution left a link: %+v", sols)
	}

	// "restart" changed last, but the verified one comes first.
	if err := s.SetVerified(ctx, "raise", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := s.SetVerified(ctx, "restart", false); err != nil {
		t.Fatal(err)
	}
	sols, err := s.SolutionsFor(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sols) != 2 || sols[0].ID != "raise" || !sols[0].Verified || sols[1].ID != "restart" {
		t.Fatalf("solutions: %+v", sols)
	}
	if err := s.SetVerified(ctx, "nope", true); !errors.Is(err, cortex.ErrNotFound) {
		t.Fatalf("SetVerified unknown: %v", err)
	}
	if sols, err := s.SolutionsFor(ctx, "nope"); err != nil || len(sols) != 0 {
		t.Fatalf("SolutionsFor unknown: %v %v", sols, err)
	}

	if _, err := s.PutKnownError(ctx, cortex.KnownError{ID: "b", Pattern: "ImagePullBackOff"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListKnownErrors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != e.ID || all[1].ID != "b" || len(all[0].Incidents) != 3 {
		t.Fatalf("list: %+v", all)
	}

	if _, err := s.PutKnownError(ctx, cortex.KnownError{ID: "c"}); err == nil {
		t.Fatal("known error without pattern accepted")
	}
	if _, err := s.PutSolution(ctx, cortex.Solution{ID: "c"}); err == nil {
		t.Fatal("solution without description accepted")
	}
	if _, err := s.PutKnownError(ctx, cortex.KnownError{ID: "c", Pattern: "x\x00"}); err == nil {
		t.Fatal("NUL in pattern accepted")
	}
}

func TestVectors(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if got, err := s.Search(ctx, []float32{1, 0, 0}, cortex.Filter{}, 5); err != nil || len(got) != 0 {
		t.Fatalf("empty index: %v %v", got, err)
	}
	items := []cortex.VectorItem{
		{Collection: "a", ID: "x", Cluster: "prod", Vector: []float32{1, 0, 0}},
		{Collection: "a", ID: "y", Cluster: "prod", Vector: []float32{0, 2, 0}},
		{Collection: "b", ID: "z", Cluster: "dev", Vector: []float32{1, 1, 0}},
		{Collection: "b", ID: "w", Vector: []float32{-1, 0, 0}},
	}
	if err := s.UpsertVectors(ctx, items); err != nil {
		t.Fatal(err)
	}
	got, err := s.Search(ctx, []float32{3, 0, 0}, cortex.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids(got), ",") != "a/x,b/z,a/y,b/w" {
		t.Fatalf("order: %v", ids(got))
	}
	want := []float64{1, 0.7071, 0, -1}
	for i, g := range got {
		if d := g.Score - want[i]; d > 1e-3 || d < -1e-3 {
			t.Fatalf("score %d = %v, want %v", i, g.Score, want[i])
		}
	}
	got, _ = s.Search(ctx, []float32{1, 0, 0}, cortex.Filter{Collections: []string{"b"}}, 1)
	if strings.Join(ids(got), ",") != "b/z" {
		t.Fatalf("collection filter: %v", ids(got))
	}
	got, _ = s.Search(ctx, []float32{1, 0, 0}, cortex.Filter{Cluster: "prod"}, 10)
	if strings.Join(ids(got), ",") != "a/x,a/y" {
		t.Fatalf("cluster filter: %v", ids(got))
	}
	// Re-upserting replaces the vector.
	if err := s.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "x", Cluster: "prod", Vector: []float32{0, 0, 1}}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Search(ctx, []float32{0, 0, 1}, cortex.Filter{}, 1)
	if strings.Join(ids(got), ",") != "a/x" {
		t.Fatalf("after replace: %v", ids(got))
	}
	for name, bad := range map[string][]cortex.VectorItem{
		"wrong dim":  {{Collection: "a", ID: "q", Vector: []float32{1, 0}}},
		"mixed dims": {{Collection: "a", ID: "q", Vector: []float32{1, 0, 0}}, {Collection: "a", ID: "r", Vector: []float32{1}}},
		"zero":       {{Collection: "a", ID: "q", Vector: []float32{0, 0, 0}}},
		"empty":      {{Collection: "a", ID: "q"}},
		"no id":      {{Collection: "a", Vector: []float32{1, 0, 0}}},
	} {
		if err := s.UpsertVectors(ctx, bad); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := s.Search(ctx, []float32{1, 0}, cortex.Filter{}, 3); err == nil || !strings.Contains(err.Error(), "dimensions") {
		t.Fatalf("search with wrong dim: %v", err)
	}
}

func TestClosedStoreSaysSo(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checks := map[string]error{
		"Upsert":        s.Upsert(ctx, []cortex.Document{{ID: "a", Collection: "c", Text: "t"}}),
		"Link":          s.Link(ctx, "a", "b"),
		"SetVerified":   s.SetVerified(ctx, "a", true),
		"AddIncident":   s.AddIncident(ctx, "a", "b"),
		"UpsertVectors": s.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "a", ID: "b", Vector: []float32{1}}}),
	}
	_, _, checks["Get"] = s.Get(ctx, "c", "a")
	_, checks["Keyword"] = s.Keyword(ctx, "x", cortex.Filter{}, 1)
	_, checks["Count"] = s.Count(ctx, "")
	_, checks["PutKnownError"] = s.PutKnownError(ctx, cortex.KnownError{Pattern: "x"})
	_, checks["ListKnownErrors"] = s.ListKnownErrors(ctx)
	_, checks["PutSolution"] = s.PutSolution(ctx, cortex.Solution{Description: "x"})
	_, checks["SolutionsFor"] = s.SolutionsFor(ctx, "a")
	_, checks["Search"] = s.Search(ctx, []float32{1}, cortex.Filter{}, 1)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

func TestConcurrentUpsertsOfSameDocument(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			errs <- s.Upsert(ctx, []cortex.Document{{ID: "same", Collection: "c", Text: fmt.Sprintf("version %d", i)}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.Count(ctx, "c"); n != 1 {
		t.Fatalf("count = %d", n)
	}
}

func TestVectorsSeenByAnotherReplica(t *testing.T) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	a, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "c", ID: "x", Vector: []float32{1, 0}}, {Collection: "c", ID: "y", Vector: []float32{0, 1}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Search(ctx, []float32{1, 0}, cortex.Filter{}, 1); strings.Join(ids(got), ",") != "c/x" {
		t.Fatalf("b before: %v", ids(got))
	}
	// a moves y next to the query; b's cached copy must follow.
	if err := a.UpsertVectors(ctx, []cortex.VectorItem{{Collection: "c", ID: "y", Vector: []float32{1, 0.01}}, {Collection: "c", ID: "x", Vector: []float32{-1, 0}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Search(ctx, []float32{1, 0}, cortex.Filter{}, 5)
	if strings.Join(ids(got), ",") != "c/y,c/x" {
		t.Fatalf("b after: %v", ids(got))
	}
	if len(b.vecs.rows) != 2 {
		t.Fatalf("cache holds %d rows, want 2", len(b.vecs.rows))
	}
}

func TestUpsertWithVectorsIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	doc := []cortex.Document{{ID: "a", Collection: "c", Text: "pod restarted"}}
	if err := s.UpsertWithVectors(ctx, doc, []cortex.VectorItem{{Collection: "c", ID: "a", Vector: []float32{1, 0}}}); err != nil {
		t.Fatal(err)
	}
	// The vector half fails (wrong dimension) inside the database, so the
	// document half must not land either.
	doc2 := []cortex.Document{{ID: "b", Collection: "c", Text: "node not ready"}}
	err := s.UpsertWithVectors(ctx, doc2, []cortex.VectorItem{{Collection: "c", ID: "b", Vector: []float32{1, 0, 0}}})
	if err == nil || !strings.Contains(err.Error(), "dimensions") {
		t.Fatalf("err = %v", err)
	}
	if _, ok, _ := s.Get(ctx, "c", "b"); ok {
		t.Fatal("document written although its vector failed")
	}
	if got, _ := s.Search(ctx, []float32{1, 0}, cortex.Filter{}, 5); strings.Join(ids(got), ",") != "c/a" {
		t.Fatalf("search: %v", ids(got))
	}
}
