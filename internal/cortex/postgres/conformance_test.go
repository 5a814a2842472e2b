package postgres

import (
	"context"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/qdrant"
	"github.com/cluster-shepherd/shepherd/internal/cortex/qdrant/qdranttest"
)

// postgresAlone: documents, graph and the exact-scan vector index.
func postgresAlone(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
	s := open(t)
	return s, s, s
}

// withQdrant is the production pairing: PostgreSQL for documents and graph,
// Qdrant (here its stand-in) for vectors.
func withQdrant(t *testing.T) (cortex.DocumentStore, cortex.VectorIndex, cortex.GraphStore) {
	s := open(t)
	srv := qdranttest.New(t)
	ix, err := qdrant.Open(context.Background(), srv.Addr(), qdrant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, ix, s
}

func TestConformance(t *testing.T)           { cortextest.StoreSuite(t, postgresAlone) }
func TestConformanceWithQdrant(t *testing.T) { cortextest.StoreSuite(t, withQdrant) }
func TestRetrieval(t *testing.T)             { cortextest.RetrievalSuite(t, postgresAlone) }
func TestRetrievalWithQdrant(t *testing.T)   { cortextest.RetrievalSuite(t, withQdrant) }
