package sqlite

import (
	"container/heap"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// matrix keeps every vector, unit length, stored by dimension (one slice
// per dimension), so a search accumulates only the query's non-zero
// dimensions in sequential passes and then keeps the best k in a heap:
// exact, and at 100k rows fast enough that no approximate index (and its
// recall loss) is needed. Sparse queries, such as the lexical embedder's,
// touch a fraction of the matrix.
type matrix struct {
	dim   int
	cols  [][]float32
	coll  []uint16
	clus  []uint32
	ids   []string
	pos   map[string]int
	colls intern
	clsts intern
}

type intern struct {
	names []string
	index map[string]int
}

func (in *intern) id(name string) int {
	if i, ok := in.index[name]; ok {
		return i
	}
	if in.index == nil {
		in.index = map[string]int{}
	}
	in.index[name] = len(in.names)
	in.names = append(in.names, name)
	return len(in.names) - 1
}

type vrow struct {
	collection, id, cluster string
	vec                     []float32
}

func key(collection, id string) string { return collection + "\x00" + id }

func (m *matrix) put(r vrow) {
	if m.pos == nil {
		m.pos = map[string]int{}
	}
	k := key(r.collection, r.id)
	c := uint16(m.colls.id(r.collection))
	cl := uint32(m.clsts.id(r.cluster))
	if m.cols == nil {
		m.cols = make([][]float32, m.dim)
	}
	if i, ok := m.pos[k]; ok {
		for d, x := range r.vec {
			m.cols[d][i] = x
		}
		m.coll[i], m.clus[i] = c, cl
		return
	}
	m.pos[k] = len(m.ids)
	for d, x := range r.vec {
		m.cols[d] = append(m.cols[d], x)
	}
	m.coll = append(m.coll, c)
	m.clus = append(m.clus, cl)
	m.ids = append(m.ids, r.id)
}

// UpsertVectors writes one vector per item, replacing the vector of the same
// (collection, id); every vector in the index has the same dimension.
func (s *Store) UpsertVectors(ctx context.Context, items []cortex.VectorItem) error {
	return s.UpsertWithVectors(ctx, nil, items)
}

func (s *Store) prepareVectors(items []cortex.VectorItem) ([]vrow, int, error) {
	if len(items) == 0 {
		return nil, 0, nil
	}
	dim := len(items[0].Vector)
	rows := make([]vrow, len(items))
	for i, it := range items {
		if err := cortex.CheckKey("collection", it.Collection); err != nil {
			return nil, 0, fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if err := cortex.CheckKey("id", it.ID); err != nil {
			return nil, 0, fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if err := cortex.CheckText("cluster", it.Cluster); err != nil {
			return nil, 0, fmt.Errorf("upsert vector %d: %w", i, err)
		}
		if len(it.Vector) != dim {
			return nil, 0, fmt.Errorf("upsert vector %d (%s/%s): %d dimensions, the batch has %d", i, it.Collection, it.ID, len(it.Vector), dim)
		}
		v, err := Normalize(it.Vector)
		if err != nil {
			return nil, 0, fmt.Errorf("upsert vector %d (%s/%s): %w", i, it.Collection, it.ID, err)
		}
		rows[i] = vrow{it.Collection, it.ID, it.Cluster, v}
	}
	return rows, dim, nil
}

func (s *Store) checkDim(dim int) error {
	s.vmu.RLock()
	have := s.vec.dim
	s.vmu.RUnlock()
	if have != 0 && dim != 0 && have != dim {
		return fmt.Errorf("vectors have %d dimensions, the index holds %d (was the embedder changed?)", dim, have)
	}
	return nil
}

func upsertVectorRows(ctx context.Context, tx *sql.Tx, rows []vrow) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO vectors (collection, id, cluster, vec) VALUES (?, ?, ?, ?)
		ON CONFLICT (collection, id) DO UPDATE SET cluster = excluded.cluster, vec = excluded.vec`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	buf := make([]byte, 0, 4*len(rows[0].vec))
	for _, r := range rows {
		buf = buf[:0]
		for _, x := range r.vec {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
		if _, err := stmt.ExecContext(ctx, r.collection, r.id, r.cluster, buf); err != nil {
			return err
		}
	}
	return nil
}

// commitVectors makes rows, written as generation gen, visible to Search
// once they are on disk. If another process wrote in between (gen is not
// the next one), vgen stays behind so the next Search reloads.
func (s *Store) commitVectors(rows []vrow, dim int, gen int64) {
	if len(rows) == 0 {
		return
	}
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if s.vec.dim == 0 {
		s.vec.dim = dim
	}
	for _, r := range rows {
		s.vec.put(r)
	}
	if gen == s.vgen+1 {
		s.vgen = gen
	}
}

func (s *Store) generation(ctx context.Context) (int64, error) {
	var gen int64
	err := s.db.QueryRowContext(ctx, `SELECT gen FROM vecgen WHERE one = 1`).Scan(&gen)
	return gen, err
}

// refresh reloads the vectors when the file holds a newer generation than
// memory: another process wrote to it.
func (s *Store) refresh(ctx context.Context) error {
	gen, err := s.generation(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: vector generation: %w", err)
	}
	s.vmu.RLock()
	stale := gen != s.vgen
	s.vmu.RUnlock()
	if !stale {
		return nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.vmu.RLock()
	stale = gen != s.vgen
	s.vmu.RUnlock()
	if !stale { // another Search reloaded meanwhile
		return nil
	}
	return s.loadVectors(ctx)
}

// loadVectors reads every vector into memory, retrying until no write
// landed during the read, so vec and vgen agree.
func (s *Store) loadVectors(ctx context.Context) error {
	for {
		before, err := s.generation(ctx)
		if err != nil {
			return fmt.Errorf("sqlite: load vectors: %w", err)
		}
		m, err := s.readVectors(ctx)
		if err != nil {
			return err
		}
		after, err := s.generation(ctx)
		if err != nil {
			return fmt.Errorf("sqlite: load vectors: %w", err)
		}
		if before == after {
			s.vmu.Lock()
			s.vec, s.vgen = m, after
			s.vmu.Unlock()
			return nil
		}
	}
}

func (s *Store) readVectors(ctx context.Context) (matrix, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT collection, id, cluster, vec FROM vectors`)
	if err != nil {
		return matrix{}, fmt.Errorf("sqlite: load vectors: %w", err)
	}
	defer rows.Close()
	var m matrix
	for rows.Next() {
		var r vrow
		var blob []byte
		if err := rows.Scan(&r.collection, &r.id, &r.cluster, &blob); err != nil {
			return matrix{}, fmt.Errorf("sqlite: load vectors: %w", err)
		}
		if len(blob)%4 != 0 || len(blob) == 0 {
			return matrix{}, fmt.Errorf("sqlite: load vectors: %s/%s has a %d-byte vector", r.collection, r.id, len(blob))
		}
		r.vec = make([]float32, len(blob)/4)
		for i := range r.vec {
			r.vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(blob[4*i:]))
		}
		if m.dim == 0 {
			m.dim = len(r.vec)
		} else if m.dim != len(r.vec) {
			return matrix{}, fmt.Errorf("sqlite: load vectors: %s/%s has %d dimensions, others %d", r.collection, r.id, len(r.vec), m.dim)
		}
		m.put(r)
	}
	if err := rows.Err(); err != nil {
		return matrix{}, fmt.Errorf("sqlite: load vectors: %w", err)
	}
	return m, nil
}

// Search returns the k vectors closest to vector by cosine similarity, by an
// exact scan of the in-memory matrix split across the CPUs.
func (s *Store) Search(ctx context.Context, vector []float32, f cortex.Filter, k int) ([]cortex.Scored, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if k < 0 {
		return nil, fmt.Errorf("vector search: k must not be negative, got %d", k)
	}
	q, err := Normalize(vector)
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	if k == 0 {
		return nil, nil
	}
	k = min(k, maxK)
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	s.vmu.RLock()
	defer s.vmu.RUnlock()
	m := &s.vec
	n := len(m.ids)
	if n == 0 {
		return nil, nil
	}
	if len(q) != m.dim {
		return nil, fmt.Errorf("vector search: query has %d dimensions, the index holds %d", len(q), m.dim)
	}
	var collOK []bool
	if len(f.Collections) > 0 {
		collOK = make([]bool, len(m.colls.names))
		for _, c := range f.Collections {
			if i, ok := m.colls.index[c]; ok {
				collOK[i] = true
			}
		}
	}
	cluster := -1
	if f.Cluster != "" {
		i, ok := m.clsts.index[f.Cluster]
		if !ok {
			return nil, nil
		}
		cluster = i
	}
	workers := 1
	if n >= 8192 {
		workers = min(runtime.GOMAXPROCS(0), 8)
	}
	var nz []int
	for d, x := range q {
		if x != 0 {
			nz = append(nz, d)
		}
	}
	scores := scorePool.Get().(*[]float32)
	defer scorePool.Put(scores)
	if cap(*scores) < n {
		*scores = make([]float32, n)
	}
	sc := (*scores)[:n]
	parts := make([]topK, workers)
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		wg.Go(func() {
			acc := sc[lo:hi]
			clear(acc)
			for _, d := range nz {
				axpy(acc, q[d], m.cols[d][lo:hi])
			}
			h := topK{k: k}
			for j, s := range acc {
				i := lo + j
				if collOK != nil && !collOK[m.coll[i]] {
					continue
				}
				if cluster >= 0 && int(m.clus[i]) != cluster {
					continue
				}
				h.offer(i, s)
			}
			parts[w] = h
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	var all []hit
	for _, p := range parts {
		all = append(all, p.items...)
	}
	out := make([]cortex.Scored, len(all))
	for i, h := range all {
		out[i] = cortex.Scored{Collection: m.colls.names[m.coll[h.row]], ID: m.ids[h.row], Score: max(-1, min(1, float64(h.score)))}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		if out[i].Collection != out[j].Collection {
			return out[i].Collection < out[j].Collection
		}
		return out[i].ID < out[j].ID
	})
	return out[:min(k, len(out))], nil
}

type hit struct {
	row   int
	score float32
}

// topK is a min-heap of the k best hits seen so far.
type topK struct {
	k     int
	items []hit
}

func (h topK) Len() int           { return len(h.items) }
func (h topK) Less(i, j int) bool { return h.items[i].score < h.items[j].score }
func (h topK) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *topK) Push(x any)        { h.items = append(h.items, x.(hit)) }
func (h *topK) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

func (h *topK) offer(row int, score float32) {
	if len(h.items) < h.k {
		heap.Push(h, hit{row, score})
		return
	}
	if score > h.items[0].score {
		h.items[0] = hit{row, score}
		heap.Fix(h, 0)
	}
}

var scorePool = sync.Pool{New: func() any { return new([]float32) }}

// axpy adds w·x to acc, element by element.
func axpy(acc []float32, w float32, x []float32) {
	x = x[:len(acc)]
	i := 0
	for ; i+4 <= len(acc); i += 4 {
		acc[i] += w * x[i]
		acc[i+1] += w * x[i+1]
		acc[i+2] += w * x[i+2]
		acc[i+3] += w * x[i+3]
	}
	for ; i < len(acc); i++ {
		acc[i] += w * x[i]
	}
}

// Normalize returns v scaled to unit length; cosine similarity is undefined
// for an empty, zero or non-finite vector, so those are refused.
func Normalize(v []float32) ([]float32, error) {
	if len(v) == 0 {
		return nil, errors.New("vector is empty")
	}
	var sum float64
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("vector element %d is not a finite number", i)
		}
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return nil, errors.New("vector is all zeros")
	}
	inv := 1 / math.Sqrt(sum)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out, nil
}
