package cortex

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Query limits.
const (
	DefaultTopK   = 5
	MaxTopK       = 50
	maxQueryBytes = 4096
)

// Rank is one retriever's ranked list, fed to Fuse.
type Rank []Scored

// Fuse merges ranked lists by weighted reciprocal rank fusion: each document
// scores Σ w/(k + rank) over the lists it appears in (rank from 1), w being
// the list's weight (1 when weights is shorter). RRF needs no score
// calibration between BM25 and cosine, which have nothing in common. Ties
// break by best rank, then collection and id, so the order is deterministic.
func Fuse(k int, weights []float64, lists ...Rank) []Scored {
	if k <= 0 {
		k = 60
	}
	type acc struct {
		Scored
		best int
	}
	byKey := map[string]*acc{}
	var order []*acc
	for li, l := range lists {
		w := 1.0
		if li < len(weights) {
			w = weights[li]
		}
		for i, sc := range l {
			key := sc.Collection + "\x00" + sc.ID
			a, ok := byKey[key]
			if !ok {
				a = &acc{Scored: Scored{Collection: sc.Collection, ID: sc.ID}, best: i}
				byKey[key] = a
				order = append(order, a)
			}
			a.Score += w / float64(k+i+1)
			a.best = min(a.best, i)
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		if a.best != b.best {
			return a.best < b.best
		}
		if a.Collection != b.Collection {
			return a.Collection < b.Collection
		}
		return a.ID < b.ID
	})
	out := make([]Scored, len(order))
	for i, a := range order {
		out[i] = a.Scored
	}
	return out
}

// Mode selects which retrievers a search uses; the evaluation compares them.
type Mode int

const (
	Hybrid Mode = iota
	KeywordOnly
	DenseOnly
)

// candidate is a fused hit with where it came from.
type candidate struct {
	Scored
	matched []string
}

// retrieve runs the retrievers of mode concurrently and fuses them; a failing
// embedder or vector index degrades to keyword search with a warning, a
// failing document store fails the query.
func (s *Service) retrieve(ctx context.Context, query string, f Filter, n int, mode Mode) ([]candidate, []string, error) {
	var (
		wg          sync.WaitGroup
		kw, dense   []Scored
		kwErr, dErr error
	)
	if mode != DenseOnly {
		wg.Go(func() { kw, kwErr = s.docs.Keyword(ctx, query, f, n) })
	}
	if mode != KeywordOnly {
		wg.Go(func() {
			v, err := s.embedder.EmbedQuery(ctx, query)
			if err != nil {
				dErr = fmt.Errorf("embed query with %s: %w", s.embedder.Name(), err)
				return
			}
			dense, dErr = s.vecs.Search(ctx, v, f, n)
			if dErr != nil {
				dErr = fmt.Errorf("vector search: %w", dErr)
			}
		})
	}
	wg.Wait()
	if kwErr != nil {
		return nil, nil, unavailable("keyword search: %w", kwErr)
	}
	var warnings []string
	if dErr != nil {
		if mode == DenseOnly {
			return nil, nil, unavailable("%w", dErr)
		}
		s.opts.Logger.Warn("cortex: dense retrieval failed, answering from keyword search alone", "err", dErr)
		warnings = append(warnings, "dense retrieval unavailable, keyword results only: "+dErr.Error())
	}
	fused := Fuse(s.opts.RRFK, []float64{1, s.opts.DenseWeight}, kw, dense)
	where := map[string][]string{}
	for name, l := range map[string][]Scored{"bm25": kw, "dense": dense} {
		for i, sc := range l {
			k := sc.Collection + "\x00" + sc.ID
			where[k] = append(where[k], fmt.Sprintf("%s#%d", name, i+1))
		}
	}
	out := make([]candidate, len(fused))
	for i, sc := range fused {
		m := where[sc.Collection+"\x00"+sc.ID]
		sort.Strings(m)
		out[i] = candidate{Scored: sc, matched: m}
	}
	return out, warnings, nil
}

func (s *Service) checkQuery(req *QueryRequest) error {
	req.Query = strings.TrimSpace(req.Query)
	if req.Query == "" {
		return invalid("query is empty")
	}
	if len(req.Query) > maxQueryBytes {
		return invalid("query is %d bytes, the limit is %d", len(req.Query), maxQueryBytes)
	}
	if req.TopK < 0 {
		return invalid("top_k must not be negative, got %d", req.TopK)
	}
	if req.TopK == 0 {
		req.TopK = DefaultTopK
	}
	req.TopK = min(req.TopK, MaxTopK)
	for _, c := range req.Collections {
		if !validCollection(c) {
			return invalid("unknown collection %q (want one of %s)", c, strings.Join(Collections, ", "))
		}
	}
	return nil
}

// Query answers a question with hybrid retrieval (BM25 + dense, fused by
// RRF, optionally reranked) and a merged context block.
func (s *Service) Query(ctx context.Context, req QueryRequest) (QueryResponse, error) {
	return s.QueryMode(ctx, req, Hybrid)
}

// QueryMode is Query restricted to some retrievers, for evaluation.
func (s *Service) QueryMode(ctx context.Context, req QueryRequest, mode Mode) (QueryResponse, error) {
	if err := s.checkQuery(&req); err != nil {
		return QueryResponse{}, err
	}
	f := Filter{Collections: req.Collections, Cluster: req.Cluster}
	cands, warnings, err := s.retrieve(ctx, req.Query, f, max(s.opts.Candidates, req.TopK), mode)
	if err != nil {
		return QueryResponse{}, err
	}
	depth := req.TopK
	if s.reranker != nil {
		depth = max(req.TopK, s.opts.RerankDepth)
	}
	hits, err := s.load(ctx, cands, depth)
	if err != nil {
		return QueryResponse{}, err
	}
	if s.reranker != nil && len(hits) > 1 {
		if w := s.rerank(ctx, req.Query, hits); w != "" {
			warnings = append(warnings, w)
		}
	}
	hits = hits[:min(len(hits), req.TopK)]
	mc, err := s.mergedContext(ctx, req.Query, hits)
	if err != nil {
		return QueryResponse{}, err
	}
	if hits == nil {
		hits = []Hit{}
	}
	return QueryResponse{Hits: hits, MergedContext: mc, Warnings: warnings}, nil
}

// load fetches the documents behind the first n candidates; a candidate
// whose document vanished (a vector without text) is skipped.
func (s *Service) load(ctx context.Context, cands []candidate, n int) ([]Hit, error) {
	var hits []Hit
	for _, c := range cands {
		if len(hits) == n {
			break
		}
		d, ok, err := s.docs.Get(ctx, c.Collection, c.ID)
		if err != nil {
			return nil, unavailable("load %s/%s: %w", c.Collection, c.ID, err)
		}
		if !ok {
			continue
		}
		hits = append(hits, Hit{ID: d.ID, Collection: d.Collection, Score: round(c.Score), Text: d.Text,
			Source: source(d), Cluster: d.Cluster, Metadata: d.Metadata, UpdatedAt: d.UpdatedAt, Matched: c.matched})
	}
	return hits, nil
}

// source names where a document came from, for citation.
func source(d Document) string {
	for _, k := range []string{"source", "path", "object"} {
		if v := d.Metadata[k]; v != "" {
			return v
		}
	}
	return d.Collection + "/" + d.ID
}

// rerank reorders hits by the reranker's scores; on failure it keeps the
// fused order and returns a warning.
func (s *Service) rerank(ctx context.Context, query string, hits []Hit) string {
	texts := make([]string, len(hits))
	for i, h := range hits {
		texts[i] = h.Text
	}
	scores, err := s.reranker.Rerank(ctx, query, texts)
	if err == nil && len(scores) != len(hits) {
		err = fmt.Errorf("%d scores for %d texts", len(scores), len(hits))
	}
	if err != nil {
		s.opts.Logger.Warn("cortex: rerank failed, keeping fused order", "err", err)
		return "rerank unavailable, fused order kept: " + err.Error()
	}
	for i := range hits {
		hits[i].Score = round(scores[i])
		hits[i].Matched = append(hits[i].Matched, "rerank")
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].Score > hits[j].Score })
	return ""
}

func round(x float64) float64 { return math.Round(x*1e6) / 1e6 }

func age(now, t time.Time) time.Duration {
	if t.IsZero() || t.After(now) {
		return 0
	}
	return now.Sub(t)
}
