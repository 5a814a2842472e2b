package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

const benchDocs = 10000

var benchWords = strings.Fields(`pod container restart crashloopbackoff oomkilled memory limit
	readiness liveness probe failed image pull backoff node pressure disk evicted scheduling
	insufficient cpu deployment replica rollout ingress certificate expired dns timeout volume
	mount permission denied secret configmap namespace quota exceeded webhook admission denied`)

func benchStore(b *testing.B) *Store {
	b.Helper()
	ctx := context.Background()
	dsn, err := srv.CreateDatabase(fmt.Sprintf("bench_%d", rand.Uint32()))
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	r := rand.New(rand.NewPCG(1, 2))
	for start := 0; start < benchDocs; start += 1000 {
		docs := make([]cortex.Document, 0, 1000)
		vecs := make([]cortex.VectorItem, 0, 1000)
		for i := start; i < start+1000; i++ {
			var words []string
			for range 30 {
				words = append(words, benchWords[r.IntN(len(benchWords))])
			}
			coll := cortex.Collections[i%len(cortex.Collections)]
			id := fmt.Sprint(i)
			docs = append(docs, cortex.Document{ID: id, Collection: coll, Cluster: "prod", Text: strings.Join(words, " ")})
			v := make([]float32, 384)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			vecs = append(vecs, cortex.VectorItem{Collection: coll, ID: id, Cluster: "prod", Vector: v})
		}
		if err := s.Upsert(ctx, docs); err != nil {
			b.Fatal(err)
		}
		if err := s.UpsertVectors(ctx, vecs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkStore measures keyword and exact-scan vector search over 10k
// documents with 384-dimensional vectors.
func BenchmarkStore(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.Run("keyword", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Keyword(ctx, "why is my pod in crashloopbackoff after the oomkilled restart", cortex.Filter{Cluster: "prod"}, 10); err != nil {
				b.Fatal(err)
			}
		}
	})
	q := make([]float32, 384)
	for i := range q {
		q[i] = float32(i%7) - 3
	}
	b.Run("vector-exact-scan", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Search(ctx, q, cortex.Filter{}, 10); err != nil {
				b.Fatal(err)
			}
		}
	})
}
