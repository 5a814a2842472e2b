package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/cortextest/sqlitetest"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

const key = "sk-test-0123456789abcdef"

// standIn follows the documented POST /v1/embeddings: bearer auth,
// {"model", "input"} → {"object":"list","data":[{"object":"embedding",
// "index","embedding"}],"model","usage"}; errors are {"error":{"message",
// "type","param","code"}}. It answers data in reverse order, which the
// API permits. vector is the "model"; nil gives [len(input), 1].
func standIn(t *testing.T, vector func(input string) []float32) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/embeddings" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"message":"Invalid URL (POST `+r.URL.Path+`)","type":"invalid_request_error","param":null,"code":null}}`)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+key {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s. You can find your API key at https://platform.example/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
				strings.TrimPrefix(got, "Bearer "))
			return
		}
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Input) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"message":"'input' is a required property","type":"invalid_request_error","param":null,"code":null}}`)
			return
		}
		if req.Model != "text-embedding-3-small" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"message":"The model '%s' does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}`, req.Model)
			return
		}
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var data []item
		for i := len(req.Input) - 1; i >= 0; i-- {
			v := []float32{float32(len(req.Input[i])), 1}
			if vector != nil {
				v = vector(req.Input[i])
			}
			data = append(data, item{"embedding", i, v})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model,
			"usage": map[string]int{"prompt_tokens": 5, "total_tokens": 5}})
	}))
}

func TestEmbedKeepsOrder(t *testing.T) {
	srv := standIn(t, nil)
	defer srv.Close()
	e, err := New(srv.URL+"/v1", "text-embedding-3-small", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Batch = 2
	vecs, err := e.EmbedDocuments(context.Background(), []string{"a", "bb", "ccc"})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vecs {
		if v[0] != float32(i+1) {
			t.Fatalf("vector %d = %v: order lost", i, v)
		}
	}
	if q, err := e.EmbedQuery(context.Background(), "four"); err != nil || q[0] != 4 {
		t.Fatalf("query: %v, %v", q, err)
	}
}

func TestErrorsAreClearAndHideTheKey(t *testing.T) {
	srv := standIn(t, nil)
	defer srv.Close()
	bad, _ := New(srv.URL, "text-embedding-3-small", "sk-wrong-secret-key", nil)
	_, err := bad.EmbedQuery(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "Incorrect API key") {
		t.Fatalf("bad key: %v", err)
	}
	if strings.Contains(err.Error(), "sk-wrong-secret-key") {
		t.Fatalf("error shows the key: %v", err)
	}
	e, _ := New(srv.URL, "nope", key, nil)
	if _, err := e.EmbedQuery(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "The model 'nope' does not exist") {
		t.Fatalf("bad model: %v", err)
	}
	if _, err := New(srv.URL, "", key, nil); err == nil {
		t.Fatal("empty model accepted")
	}
	// No key (a local server): nothing to hide, the message stays readable.
	local, _ := New(srv.URL, "text-embedding-3-small", "", nil)
	if _, err := local.EmbedQuery(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "Incorrect API key provided") {
		t.Fatalf("no key: %v", err)
	}
}

// The shared retrieval suite over the embedded store, with the real client
// talking to the stand-in, whose "model" is the deterministic built-in
// lexical embedder (no real model can run in a test).
func TestRetrievalSuiteOverSQLite(t *testing.T) {
	lex := lexical.New(0)
	cortextest.RetrievalSuiteWith(t, sqlitetest.Stores, cortextest.Pipeline{Embedder: func(t *testing.T) cortex.Embedder {
		srv := standIn(t, func(input string) []float32 {
			v, _ := lex.EmbedQuery(context.Background(), input)
			return v // nil for an empty text: the client must call that an error
		})
		t.Cleanup(srv.Close)
		e, err := New(srv.URL+"/v1", "text-embedding-3-small", key, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}})
}
