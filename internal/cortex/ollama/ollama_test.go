package ollama

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest/sqlitetest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

// standIn follows Ollama's documented POST /api/embed: {"model", "input"}
// → {"model", "embeddings"}; errors are {"error": "..."}.
type standIn struct {
	mu     sync.Mutex
	inputs []string
	calls  int
	// vector is the "model"; nil gives [len(input), 1, 0.5].
	vector func(input string) []float32
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
		if s.vector != nil {
			embs = append(embs, s.vector(in))
			continue
		}
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

// Nomic's task prefixes, which New sets for nomic-embed-text.
const docPrefix, queryPrefix = "search_document: ", "search_query: "

// lexicalModel stands in for nomic-embed-text where no model can run: the
// task prefix is an instruction to the model, not text, so it is dropped,
// and the rest is embedded with the deterministic built-in lexical embedder.
func lexicalModel(input string) []float32 {
	text, ok := strings.CutPrefix(input, docPrefix)
	if !ok {
		text = strings.TrimPrefix(input, queryPrefix)
	}
	v, _ := lexical.New(0).EmbedQuery(context.Background(), text)
	return v // nil for an empty text: the client must call that an error
}

// asked wraps the client as the Service sees it and notes what each call
// should put on the wire: documents with the document prefix, queries with
// the query prefix.
type asked struct {
	cortex.Embedder
	mu   sync.Mutex
	want []string
}

func (a *asked) note(prefix string, texts ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range texts {
		a.want = append(a.want, prefix+t)
	}
}

func (a *asked) EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error) {
	a.note(docPrefix, texts...)
	return a.Embedder.EmbedDocuments(ctx, texts)
}

func (a *asked) EmbedQuery(ctx context.Context, text string) ([]float32, error) {
	a.note(queryPrefix, text)
	return a.Embedder.EmbedQuery(ctx, text)
}

// The shared retrieval suite over the embedded store, with the real client
// talking to the stand-in: documents and queries must reach the server with
// their own nomic prefix, every one of them.
func TestRetrievalSuiteOverSQLite(t *testing.T) {
	cortextest.RetrievalSuiteWith(t, sqlitetest.Stores, cortextest.Pipeline{Embedder: func(t *testing.T) cortex.Embedder {
		si := &standIn{vector: lexicalModel}
		srv := httptest.NewServer(si)
		t.Cleanup(srv.Close)
		e, err := New(srv.URL, DefaultModel, nil)
		if err != nil {
			t.Fatal(err)
		}
		a := &asked{Embedder: e}
		t.Cleanup(func() {
			si.mu.Lock()
			defer si.mu.Unlock()
			got, want := slices.Sorted(slices.Values(si.inputs)), slices.Sorted(slices.Values(a.want))
			if !slices.Equal(got, want) {
				t.Errorf("the server got %q\nwant %q", got, want)
			}
			docs := slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, docPrefix) })
			queries := slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, queryPrefix) })
			if !docs || !queries {
				t.Errorf("the suite sent documents %v, queries %v; want both", docs, queries)
			}
		})
		return a
	}})
}
