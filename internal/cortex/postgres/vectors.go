package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// vectorLock serialises vector writes so the first upsert fixes the dimension
// even when two writers start at once.
const vectorLock = 0x636f72766563 // "corvec"

// UpsertVectors stores one unit-length vector per (collection, id) in one
// transaction; every vector in the store must have the same dimension.
func (s *Store) UpsertVectors(ctx context.Context, items []cortex.VectorItem) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	dim := len(items[0].Vector)
	unit := make([][]float32, len(items))
	for i, it := range items {
		if err := validKey("collection", it.Collection); err != nil {
			return fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if err := validKey("id", it.ID); err != nil {
			return fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if err := validText("cluster", it.Cluster); err != nil {
			return fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if len(it.Vector) != dim {
			return fmt.Errorf("upsert vector %d (%s/%s): %d dimensions, the batch has %d", i, it.Collection, it.ID, len(it.Vector), dim)
		}
		v, err := normalize(it.Vector)
		if err != nil {
			return fmt.Errorf("upsert vector %d (%s/%s): %w", i, it.Collection, it.ID, err)
		}
		unit[i] = v
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(vectorLock)); err != nil {
			return err
		}
		have, err := indexDim(ctx, tx)
		if err != nil {
			return err
		}
		if have != 0 && have != dim {
			return fmt.Errorf("vectors have %d dimensions, the index holds %d (was the embedder changed?)", dim, have)
		}
		b := &pgx.Batch{}
		for i, it := range items {
			b.Queue(`INSERT INTO cortex_vectors (collection, id, cluster, dim, vec) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (collection, id) DO UPDATE SET cluster = EXCLUDED.cluster, dim = EXCLUDED.dim, vec = EXCLUDED.vec`,
				it.Collection, it.ID, it.Cluster, dim, unit[i])
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("upsert %d vectors: %w", len(items), err)
	}
	return nil
}

// Search returns the k vectors closest to vector by cosine similarity, by an
// exact scan: fine for tens of thousands of documents, Qdrant beyond that.
func (s *Store) Search(ctx context.Context, vector []float32, f cortex.Filter, k int) ([]cortex.Scored, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if k < 0 {
		return nil, fmt.Errorf("vector search: k must not be negative, got %d", k)
	}
	if k == 0 {
		return nil, nil
	}
	q, err := normalize(vector)
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	have, err := indexDim(ctx, s.pool)
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	if have == 0 {
		return nil, nil
	}
	if have != len(q) {
		return nil, fmt.Errorf("vector search: query has %d dimensions, the index holds %d", len(q), have)
	}
	rows, err := s.pool.Query(ctx, `SELECT collection, id,
			(SELECT sum(a::float8 * b::float8) FROM unnest(vec, $1::real[]) AS t(a, b)) AS score
		FROM cortex_vectors
		WHERE (cardinality($2::text[]) = 0 OR collection = ANY($2))
		  AND ($3 = '' OR cluster = $3)
		ORDER BY score DESC, collection, id
		LIMIT $4`, q, nonNil(f.Collections), f.Cluster, min(k, maxK))
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cortex.Scored, error) {
		var sc cortex.Scored
		err := r.Scan(&sc.Collection, &sc.ID, &sc.Score)
		sc.Score = max(-1, min(1, sc.Score))
		return sc, err
	})
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	return out, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func indexDim(ctx context.Context, q querier) (int, error) {
	var dim int
	err := q.QueryRow(ctx, "SELECT dim FROM cortex_vectors LIMIT 1").Scan(&dim)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return dim, err
}

// normalize scales v to unit length; cosine similarity is undefined for an
// empty, zero or non-finite vector, so those are refused.
func normalize(v []float32) ([]float32, error) {
	if len(v) == 0 {
		return nil, errors.New("vector is empty")
	}
	var sum float64
	for i, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("vector element %d is not a finite number", i)
		}
		sum += f * f
	}
	if sum == 0 {
		return nil, errors.New("vector is all zeros")
	}
	n := math.Sqrt(sum)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out, nil
}
