package ollama

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// standIn follows Ollama's documented POST /api/embed: {"model", "input"}
// → {"model", "embeddings"}; errors are {"error": "..."}.
type standIn struct {
	mu     sync.Mutex
	inputs []string
	calls  int
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/api/embed" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "404 page not found")
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":%q}`, err.Error())
		return
	}
	if !strings.HasPrefix(req.Model, "nomic-embed-text") && req.Model != "all-minilm" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":"model \"%s\" not found, try pulling it first"}`, req.Model)
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if json.Unmarshal(req.Input, &one) != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid input type"}`)
			return
		}
		inputs = []string{one}
	}
	s.mu.Lock()
	s.inputs = append(s.inputs, inputs...)
	s.calls++
	s.mu.Unlock()
	var embs [][]float32
	for _, in := range inputs {
		embs = append(embs, []float32{float32(len(in)), 1, 0.5})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"model": req.Model, "embeddings": embs,
		"total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8})
}

func TestEmbedWithPrefixesAndBatches(t *testing.T) {
	si := &standIn{}
	srv := httptest.NewServer(si)
	defer srv.Close()
	e, err := New(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Batch = 2
	if e.Name() != "ollama/nomic-embed-text" {
		t.Fatalf("name %q", e.Name())
	}
	vecs, err := e.EmbedDocuments(context.Background(), []string{"a", "bb", "ccc"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != 3 || vecs[2][0] != float32(len("search_document: ccc")) || si.calls != 2 {
		t.Fatalf("vecs %v, %d calls", vecs, si.calls)
	}
	q, err := e.EmbedQuery(context.Background(), "why")
	if err != nil {
		t.Fatal(err)
	}
	if q[0] != float32(len("search_query: why")) || si.inputs[3] != "search_query: why" || si.inputs[0] != "search_document: a" {
		t.Fatalf("inputs %q", si.inputs)
	}
	// Other models get no prefixes.
	e2, _ := New(srv.URL, "all-minilm", nil)
	if _, err := e2.EmbedQuery(context.Background(), "why"); err != nil || si.inputs[4] != "why" {
		t.Fatalf("all-minilm: %v, %q", err, si.inputs)
	}
}

func TestErrorsAreClear(t *testing.T) {
	srv := httptest.NewServer(&standIn{})
	defer srv.Close()
	e, _ := New(srv.URL, "mxbai-embed-large", nil)
	_, err := e.EmbedQuery(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), `model "mxbai-embed-large" not found, try pulling it first`) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown model: %v", err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dead, _ := New("http://"+addr, "", nil)
	if _, err := dead.EmbedDocuments(context.Background(), []string{"x"}); err == nil || !strings.Contains(err.Error(), "ollama embed") {
		t.Fatalf("dead server: %v", err)
	}
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"embeddings": [[1,2]]}`) // one embedding for two inputs
	}))
	defer garbage.Close()
	g, _ := New(garbage.URL, "", nil)
	if _, err := g.EmbedDocuments(context.Background(), []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "1 embeddings for 2 inputs") {
		t.Fatalf("short answer: %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "not a url", "http://"} {
		if _, err := New(bad, "", nil); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}
