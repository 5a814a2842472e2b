package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "cortex.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	cortextest.StoreSuite(t, func(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
		s := open(t)
		return s, s, s
	})
}

func TestReopenKeepsDocumentsAndVectors(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cortex.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.UpsertWithVectors(ctx,
		[]cortex.Document{{ID: "a", Collection: cortex.CollectionDocs, Text: "walrus"}},
		[]cortex.VectorItem{{ID: "a", Collection: cortex.CollectionDocs, Vector: []float32{0, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Search(ctx, []float32{0, 1}, cortex.Filter{}, 3)
	if err != nil || len(got) != 1 || got[0].ID != "a" || got[0].Score < 0.999 {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if hits, _ := s.Keyword(ctx, "walrus", cortex.Filter{}, 3); len(hits) != 1 {
		t.Fatalf("keyword after reopen: %v", hits)
	}
	// A dimension clash inside a combined write leaves the document unwritten too.
	err = s.UpsertWithVectors(ctx,
		[]cortex.Document{{ID: "b", Collection: cortex.CollectionDocs, Text: "narwhal"}},
		[]cortex.VectorItem{{ID: "b", Collection: cortex.CollectionDocs, Vector: []float32{0, 2, 1}}})
	if err == nil {
		t.Fatal("dimension clash accepted")
	}
	if _, ok, _ := s.Get(ctx, cortex.CollectionDocs, "b"); ok {
		t.Fatal("document of a failed combined write was kept")
	}
}

func TestOpenRefusesBadPath(t *testing.T) {
	if _, err := Open(context.Background(), ""); err == nil {
		t.Fatal("empty path accepted")
	}
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "missing", "dir", "x.db")); err == nil {
		t.Fatal("path in a missing directory accepted")
	}
}

func TestRetrieval(t *testing.T) {
	cortextest.RetrievalSuite(t, func(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
		s := open(t)
		return s, s, s
	})
}

// TestSeesAnotherProcessWrites: `shepherd ingest` writes to the SQLite file
// of a running `shepherd serve`; the server's in-memory vectors must pick
// the new ones up, not only BM25.
func TestSeesAnotherProcessWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cortex.db")
	server, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	item := func(id string, v ...float32) cortex.VectorItem {
		return cortex.VectorItem{Collection: cortex.CollectionDocs, ID: id, Vector: v}
	}
	if err := server.UpsertVectors(ctx, []cortex.VectorItem{item("a", 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	ingest, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ingest.UpsertVectors(ctx, []cortex.VectorItem{item("b", 0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	ingest.Close()
	got, err := server.Search(ctx, []float32{0, 1, 0}, cortex.Filter{}, 1)
	if err != nil || len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("server does not see the other process's vector: %+v %v", got, err)
	}
	// And its own writes after that are not lost.
	if err := server.UpsertVectors(ctx, []cortex.VectorItem{item("c", 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	got, err = server.Search(ctx, []float32{0, 0, 1}, cortex.Filter{}, 3)
	if err != nil || len(got) != 3 || got[0].ID != "c" {
		t.Fatalf("after its own write: %+v %v", got, err)
	}
}
