package tei

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// standIn follows TEI's documented POST /rerank: {"query", "texts",
// "truncate", "raw_scores"} → [{"index","score"}] sorted by score; errors
// are {"error","error_type"} with 413 (batch too large), 422 (validation),
// 424 (backend) and 429 (overloaded).
func standIn(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var req struct {
			Query string   `json:"query"`
			Texts []string `json:"texts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"error":%q,"error_type":"Validation"}`, err.Error())
			return
		}
		if len(req.Texts) > 4 {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"error":"batch size %d > maximum allowed batch size 4","error_type":"Validation"}`, len(req.Texts))
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
		var out []rank
		for i, tx := range req.Texts {
			s := 0.01
			if strings.Contains(tx, req.Query) {
				s = 0.99
			}
			out = append(out, rank{i, s - float64(i)*0.001})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Score > out[j].Score })
		_ = json.NewEncoder(w).Encode(out)
	}))
}

func TestRerankReturnsScoresInTextOrder(t *testing.T) {
	srv := standIn(t)
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
	srv := standIn(t)
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
