// Package openai embeds text with any OpenAI-compatible /v1/embeddings
// endpoint (OpenAI, vLLM, LocalAI, llama.cpp server, TEI's OpenAI route).
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// Embedder calls POST {base}/v1/embeddings.
type Embedder struct {
	base   string
	model  string
	apiKey string
	http   *http.Client
	// QueryPrefix and DocumentPrefix are prepended to texts, for models
	// trained with instructions (empty by default).
	QueryPrefix, DocumentPrefix string
	// Batch caps the texts sent in one request (default 64).
	Batch int
}

// New returns an embedder for model at baseURL (e.g.
// "https://api.example.com", with or without a trailing /v1); apiKey may be
// empty for local servers. A nil hc gets a 60-second timeout.
func New(baseURL, model, apiKey string, hc *http.Client) (*Embedder, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai: %q is not an http(s) URL", baseURL)
	}
	if model == "" {
		return nil, fmt.Errorf("openai: model is empty")
	}
	u.User = nil
	u.Path = strings.TrimSuffix(u.Path, "/v1")
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Embedder{base: u.String(), model: model, apiKey: apiKey, http: hc, Batch: 64}, nil
}

// Name identifies the backend and model.
func (e *Embedder) Name() string { return "openai/" + e.model }

// EmbedDocuments embeds texts in batches.
func (e *Embedder) EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error) {
	return cortex.EmbedInBatches(ctx, texts, e.Batch, e.DocumentPrefix, e.embed)
}

// EmbedQuery embeds one question.
func (e *Embedder) EmbedQuery(ctx context.Context, text string) ([]float32, error) {
	vecs, err := e.embed(ctx, []string{e.QueryPrefix + text})
	if err != nil {
		return nil, err
	}
	return vecs[0], nil
}

type request struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
}

type response struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
}

// apiError is the OpenAI error body: {"error": {"message", "type", "code"}}.
type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    any    `json:"code"`
	} `json:"error"`
}

func (e *Embedder) embed(ctx context.Context, input []string) ([][]float32, error) {
	body, _ := json.Marshal(request{Model: e.model, Input: input, EncodingFormat: "float"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/v1/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("openai embed: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("openai embed with %s: %w", e.model, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("openai embed with %s: read answer: %w", e.model, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae apiError
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &ae) == nil && ae.Error.Message != "" {
			msg = ae.Error.Message
			if ae.Error.Type != "" {
				msg += " (" + ae.Error.Type + ")"
			}
		}
		if e.apiKey != "" { // ReplaceAll with "" would put *** between every rune
			msg = strings.ReplaceAll(msg, e.apiKey, "***")
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("openai embed with %s: %s: %s", e.model, resp.Status, msg)
	}
	var r response
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("openai embed with %s: decode answer: %w", e.model, err)
	}
	if len(r.Data) != len(input) {
		return nil, fmt.Errorf("openai embed with %s: %d embeddings for %d inputs", e.model, len(r.Data), len(input))
	}
	// The API does not promise order; index does.
	sort.Slice(r.Data, func(i, j int) bool { return r.Data[i].Index < r.Data[j].Index })
	out := make([][]float32, len(r.Data))
	for i, d := range r.Data {
		if d.Index != i || len(d.Embedding) == 0 {
			return nil, fmt.Errorf("openai embed with %s: missing or empty embedding %d", e.model, i)
		}
		out[i] = d.Embedding
	}
	return out, nil
}
