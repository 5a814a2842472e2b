// Package ollama embeds text with a model served by Ollama's /api/embed.
package ollama

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// DefaultModel is the embedding model Cortex documents for Ollama.
const DefaultModel = "nomic-embed-text"

// Embedder calls Ollama's POST /api/embed.
type Embedder struct {
	base  string
	model string
	http  *http.Client
	// QueryPrefix and DocumentPrefix are prepended to texts; nomic-embed-text
	// was trained with "search_query: " and "search_document: " and retrieves
	// noticeably worse without them.
	QueryPrefix, DocumentPrefix string
	// Batch caps the texts sent in one request (default 64).
	Batch int
}

// New returns an embedder for model (DefaultModel when empty) at baseURL
// (e.g. "http://127.0.0.1:11434"); a nil hc gets a 60-second timeout.
func New(baseURL, model string, hc *http.Client) (*Embedder, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ollama: %q is not an http(s) URL", baseURL)
	}
	u.User = nil
	if model == "" {
		model = DefaultModel
	}
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	e := &Embedder{base: u.String(), model: model, http: hc, Batch: 64}
	if strings.HasPrefix(model, "nomic-embed-text") {
		e.QueryPrefix, e.DocumentPrefix = "search_query: ", "search_document: "
	}
	return e, nil
}

// Name identifies the backend and model.
func (e *Embedder) Name() string { return "ollama/" + e.model }

// EmbedDocuments embeds texts in batches, with the document prefix.
func (e *Embedder) EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error) {
	return cortex.EmbedInBatches(ctx, texts, e.Batch, e.DocumentPrefix, e.embed)
}

// EmbedQuery embeds one question, with the query prefix.
func (e *Embedder) EmbedQuery(ctx context.Context, text string) ([]float32, error) {
	vecs, err := e.embed(ctx, []string{e.QueryPrefix + text})
	if err != nil {
		return nil, err
	}
	return vecs[0], nil
}

type embedRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embedResponse struct {
	Model      string      `json:"model"`
	Embeddings [][]float32 `json:"embeddings"`
}

func (e *Embedder) embed(ctx context.Context, input []string) ([][]float32, error) {
	body, _ := json.Marshal(embedRequest{Model: e.model, Input: input})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/api/embed", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("ollama embed: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ollama embed with %s: %w", e.model, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("ollama embed with %s: read answer: %w", e.model, err)
	}
	if resp.StatusCode != http.StatusOK {
		// Ollama answers errors as {"error": "..."}.
		var eb struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		return nil, fmt.Errorf("ollama embed with %s: %s: %s", e.model, resp.Status, cut(msg, 300))
	}
	var er embedResponse
	if err := json.Unmarshal(data, &er); err != nil {
		return nil, fmt.Errorf("ollama embed with %s: decode answer: %w", e.model, err)
	}
	if len(er.Embeddings) != len(input) {
		return nil, fmt.Errorf("ollama embed with %s: %d embeddings for %d inputs", e.model, len(er.Embeddings), len(input))
	}
	for i, v := range er.Embeddings {
		if len(v) == 0 {
			return nil, errors.New("ollama embed: empty embedding at " + fmt.Sprint(i))
		}
	}
	return er.Embeddings, nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
