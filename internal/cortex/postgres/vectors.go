package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// vectorLock serialises vector writes so the first upsert fixes the dimension
// even when two writers start at once.
const vectorLock = 0x636f72766563 // "corvec"

// UpsertVectors stores one unit-length vector per (collection, id) in one
// transaction; every vector in the store must have the same dimension.
func (s *Store) UpsertVectors(ctx context.Context, items []cortex.VectorItem) error {
	return s.UpsertWithVectors(ctx, nil, items)
}

// prepareVectors validates items and returns their unit-length vectors.
func prepareVectors(items []cortex.VectorItem) ([][]float32, error) {
	if len(items) == 0 {
		return nil, nil
	}
	dim := len(items[0].Vector)
	unit := make([][]float32, len(items))
	for i, it := range items {
		if err := cortex.CheckKey("collection", it.Collection); err != nil {
			return nil, fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if err := cortex.CheckKey("id", it.ID); err != nil {
			return nil, fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if err := cortex.CheckText("cluster", it.Cluster); err != nil {
			return nil, fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if len(it.Vector) != dim {
			return nil, fmt.Errorf("upsert vector %d (%s/%s): %d dimensions, the batch has %d", i, it.Collection, it.ID, len(it.Vector), dim)
		}
		v, err := normalize(it.Vector)
		if err != nil {
			return nil, fmt.Errorf("upsert vector %d (%s/%s): %w", i, it.Collection, it.ID, err)
		}
		unit[i] = v
	}
	return unit, nil
}

func upsertVectors(ctx context.Context, tx pgx.Tx, items []cortex.VectorItem, unit [][]float32) error {
	dim := len(unit[0])
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
			ON CONFLICT (collection, id) DO UPDATE SET cluster = EXCLUDED.cluster, dim = EXCLUDED.dim, vec = EXCLUDED.vec,
				seq = nextval('cortex_vectors_seq')`,
			it.Collection, it.ID, it.Cluster, dim, unit[i])
	}
	return tx.SendBatch(ctx, b).Close()
}

// Search returns the k vectors closest to vector by cosine similarity, by an
// exact scan over an in-memory copy that each call brings up to date with
// the rows changed since the last: fine for tens of thousands of documents,
// Qdrant beyond that.
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
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if err := s.vecs.refresh(ctx, s.pool); err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	if len(s.vecs.rows) == 0 {
		return nil, nil
	}
	if s.vecs.dim != len(q) {
		return nil, fmt.Errorf("vector search: query has %d dimensions, the index holds %d", len(q), s.vecs.dim)
	}
	return s.vecs.scan(q, f, min(k, maxK)), nil
}

// vectorCache is one process's copy of cortex_vectors.
type vectorCache struct {
	seq  int64 // highest row seq seen
	dim  int
	rows []vecRow
	pos  map[vecKey]int
}

type vecKey struct{ collection, id string }

type vecRow struct {
	vecKey
	cluster string
	vec     []float32
}

func (c *vectorCache) refresh(ctx context.Context, pool *pgxpool.Pool) error {
	rows, err := pool.Query(ctx, `SELECT seq, collection, id, cluster, vec FROM cortex_vectors WHERE seq > $1 ORDER BY seq`, c.seq)
	if err != nil {
		return err
	}
	defer rows.Close()
	if c.pos == nil {
		c.pos = map[vecKey]int{}
	}
	for rows.Next() {
		var seq int64
		var r vecRow
		if err := rows.Scan(&seq, &r.collection, &r.id, &r.cluster, &r.vec); err != nil {
			return err
		}
		if c.dim != len(r.vec) {
			// The dimension only changes if rows were rewritten outside
			// this package; start over rather than mix sizes.
			if len(c.rows) > 0 {
				c.rows, c.pos = c.rows[:0], map[vecKey]int{}
			}
			c.dim = len(r.vec)
		}
		if i, ok := c.pos[r.vecKey]; ok {
			c.rows[i] = r
		} else {
			c.pos[r.vecKey] = len(c.rows)
			c.rows = append(c.rows, r)
		}
		c.seq = seq
	}
	return rows.Err()
}

func (c *vectorCache) scan(q []float32, f cortex.Filter, k int) []cortex.Scored {
	var colls map[string]bool
	if len(f.Collections) > 0 {
		colls = make(map[string]bool, len(f.Collections))
		for _, c := range f.Collections {
			colls[c] = true
		}
	}
	out := make([]cortex.Scored, 0, k+1)
	for _, r := range c.rows {
		if (colls != nil && !colls[r.collection]) || (f.Cluster != "" && r.cluster != f.Cluster) {
			continue
		}
		var dot float32
		for i, x := range r.vec {
			dot += x * q[i]
		}
		sc := cortex.Scored{Collection: r.collection, ID: r.id, Score: max(-1, min(1, float64(dot)))}
		if len(out) == k && !better(sc, out[k-1]) {
			continue
		}
		// Insert in order; k is small, so shifting beats a heap here.
		i := sort.Search(len(out), func(i int) bool { return better(sc, out[i]) })
		if len(out) < k {
			out = append(out, cortex.Scored{})
		}
		copy(out[i+1:], out[i:len(out)-1])
		out[i] = sc
	}
	return out
}

// better orders by score, then by name so equal scores come out the same
// way every time.
func better(a, b cortex.Scored) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	if a.Collection != b.Collection {
		return a.Collection < b.Collection
	}
	return a.ID < b.ID
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
