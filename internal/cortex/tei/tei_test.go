package tei

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest/sqlitetest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

// standIn follows TEI's documented POST /rerank: {"query", "texts",
// "truncate", "raw_scores"} → [{"index","score"}] sorted by score; errors
// are {"error","error_type"} with 413 (more texts than maxBatch, TEI's
// --max-client-batch-size), 422 (validation), 424 (backend) and 429
// (overloaded). The query "backend" fails with 424.
//
// No cross-encoder can run in a test, so the score is term overlap: the
// share of the query's words (lexical.Tokens stems, stopwords dropped) that
// the text contains, mapped to a logit 8·share−4 and, unless raw_scores,
// through a sigmoid as TEI does: 0.018 for no shared word, 0.982 for all.
// Ties keep the order of texts.
func standIn(t *testing.T, maxBatch int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPost || r.URL.Path != "/rerank" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var req struct {
			Query     string   `json:"query"`
			Texts     []string `json:"texts"`
			RawScores bool     `json:"raw_scores"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"error":%q,"error_type":"Validation"}`, err.Error())
			return
		}
		if len(req.Texts) > maxBatch {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"error":"batch size %d > maximum allowed batch size %d","error_type":"Validation"}`, len(req.Texts), maxBatch)
			return
		}
		if req.Query == "backend" {
			w.WriteHeader(http.StatusFailedDependency)
			fmt.Fprint(w, `{"error":"inference failed","error_type":"Backend"}`)
			return
		}
		type rank struct {
			Index int     `json:"index"`
			Score float64 `json:"score"`
		}
		out := make([]rank, len(req.Texts))
		for i, tx := range req.Texts {
			s := 8*overlap(req.Query, tx) - 4
			if !req.RawScores {
				s = 1 / (1 + math.Exp(-s))
			}
			out[i] = rank{i, s}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
		_ = json.NewEncoder(w).Encode(out)
	}))
}

// overlap is the share of query's distinct words that text contains.
func overlap(query, text string) float64 {
	words := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, tk := range lexical.Tokens(s) {
			m[tk.Stem] = true
		}
		return m
	}
	q, tx := words(query), words(text)
	if len(q) == 0 {
		return 0
	}
	n := 0
	for w := range q {
		if tx[w] {
			n++
		}
	}
	return float64(n) / float64(len(q))
}

func TestRerankReturnsScoresInTextOrder(t *testing.T) {
	srv := standIn(t, 4)
	defer srv.Close()
	r, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Rerank(context.Background(), "oom", []string{"image pull", "oom killed", "probe"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1] < 0.9 || got[0] > 0.1 || got[2] > 0.1 {
		t.Fatalf("scores %v", got)
	}
	if got, err := r.Rerank(context.Background(), "x", nil); err != nil || got != nil {
		t.Fatalf("no texts: %v, %v", got, err)
	}
}

func TestRerankErrors(t *testing.T) {
	srv := standIn(t, 4)
	defer srv.Close()
	r, _ := New(srv.URL, nil)
	_, err := r.Rerank(context.Background(), "x", []string{"1", "2", "3", "4", "5"})
	if err == nil || !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), "maximum allowed batch size 4 (Validation)") {
		t.Fatalf("too many: %v", err)
	}
	if _, err := r.Rerank(context.Background(), "backend", []string{"1"}); err == nil || !strings.Contains(err.Error(), "inference failed (Backend)") {
		t.Fatalf("backend: %v", err)
	}
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"index":5,"score":1}]`)
	}))
	defer liar.Close()
	l, _ := New(liar.URL, nil)
	if _, err := l.Rerank(context.Background(), "x", []string{"a"}); err == nil {
		t.Fatal("out-of-range index accepted")
	}
}

// The shared retrieval suite over the embedded store with the built-in
// embedder and the real client reranking through the stand-in, at TEI's
// default batch limit of 32 (the Service sends at most RerankDepth, 20).
func TestRetrievalSuiteOverSQLite(t *testing.T) {
	cortextest.RetrievalSuiteWith(t, sqlitetest.Stores, cortextest.Pipeline{Reranker: func(t *testing.T) cortex.Reranker {
		srv := standIn(t, 32)
		t.Cleanup(srv.Close)
		r, err := New(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}})
}
