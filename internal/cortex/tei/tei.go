// Package tei reranks with a cross-encoder (e.g. BAAI/bge-reranker-base)
// served by Hugging Face text-embeddings-inference's POST /rerank.
package tei

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Reranker calls POST {base}/rerank.
type Reranker struct {
	base string
	http *http.Client
}

// New returns a reranker at baseURL (e.g. "http://127.0.0.1:8080"); a nil
// hc gets a 30-second timeout.
func New(baseURL string, hc *http.Client) (*Reranker, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tei: %q is not an http(s) URL", baseURL)
	}
	u.User = nil
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Reranker{base: u.String(), http: hc}, nil
}

type request struct {
	Query     string   `json:"query"`
	Texts     []string `json:"texts"`
	Truncate  bool     `json:"truncate"`
	RawScores bool     `json:"raw_scores"`
}

type rank struct {
	Index int     `json:"index"`
	Score float64 `json:"score"`
}

// apiError is TEI's error body: {"error": "...", "error_type": "..."}.
type apiError struct {
	Error     string `json:"error"`
	ErrorType string `json:"error_type"`
}

// Rerank returns one relevance score per text, in the order of texts.
func (r *Reranker) Rerank(ctx context.Context, query string, texts []string) ([]float64, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	body, _ := json.Marshal(request{Query: query, Texts: texts, Truncate: true})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/rerank", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tei rerank: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("tei rerank: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("tei rerank: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae apiError
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &ae) == nil && ae.Error != "" {
			msg = ae.Error
			if ae.ErrorType != "" {
				msg += " (" + ae.ErrorType + ")"
			}
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("tei rerank: %s: %s", resp.Status, msg)
	}
	var ranks []rank
	if err := json.Unmarshal(data, &ranks); err != nil {
		return nil, fmt.Errorf("tei rerank: decode answer: %w", err)
	}
	out := make([]float64, len(texts))
	seen := make([]bool, len(texts))
	for _, rk := range ranks {
		if rk.Index < 0 || rk.Index >= len(texts) || seen[rk.Index] {
			return nil, fmt.Errorf("tei rerank: answer has index %d for %d texts", rk.Index, len(texts))
		}
		seen[rk.Index] = true
		out[rk.Index] = rk.Score
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("tei rerank: answer has no score for text %d", i)
		}
	}
	return out, nil
}
