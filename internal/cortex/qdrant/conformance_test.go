package qdrant

import (
	"context"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/qdrant/qdranttest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
)

// The vector half of the shared suite, against the stand-in.
func TestConformance(t *testing.T) {
	cortextest.StoreSuite(t, func(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
		srv := qdranttest.New(t)
		ix, err := Open(context.Background(), srv.Addr(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return nil, ix, nil
	})
}

// Retrieval over Qdrant vectors, with the embedded store for documents.
func TestRetrieval(t *testing.T) {
	cortextest.RetrievalSuite(t, func(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
		st, err := sqlite.Open(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		srv := qdranttest.New(t)
		ix, err := Open(context.Background(), srv.Addr(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st, ix, st
	})
}
