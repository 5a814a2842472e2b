package cortex

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

// Client is Memory over HTTP, for a shepherd that talks to a remote Cortex.
type Client struct {
	base string
	http *http.Client
}

var _ Memory = (*Client)(nil)

// NewClient returns a client of the Cortex at baseURL (e.g.
// "http://127.0.0.1:8090"); a nil hc gets one with a 30-second timeout.
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cortex client: %q is not an http(s) URL", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	u.User = nil // credentials in a URL would leak into every error message
	return &Client{base: u.String(), http: hc}, nil
}

// Ingest upserts documents into one collection.
func (c *Client) Ingest(ctx context.Context, req IngestRequest) (IngestResponse, error) {
	var out IngestResponse
	return out, c.do(ctx, http.MethodPost, "/ingest", req, &out)
}

// Query asks the remote Cortex a question.
func (c *Client) Query(ctx context.Context, req QueryRequest) (QueryResponse, error) {
	var out QueryResponse
	return out, c.do(ctx, http.MethodPost, "/query", req, &out)
}

// Risk scores a proposed action.
func (c *Client) Risk(ctx context.Context, req RiskRequest) (RiskResponse, error) {
	var out RiskResponse
	return out, c.do(ctx, http.MethodPost, "/risk", req, &out)
}

// RecordOutcome stores what happened when an action ran.
func (c *Client) RecordOutcome(ctx context.Context, rec OutcomeRecord) error {
	return c.do(ctx, http.MethodPost, "/outcomes", rec, nil)
}

// Report summarises one cluster's history since a time, for a promotion PR.
func (c *Client) Report(ctx context.Context, req ReportRequest) (ReportResponse, error) {
	var out ReportResponse
	return out, c.do(ctx, http.MethodPost, "/report", req, &out)
}

// PutKnownError creates or updates a known error.
func (c *Client) PutKnownError(ctx context.Context, e KnownError) (KnownError, error) {
	var out KnownError
	return out, c.do(ctx, http.MethodPost, "/known-errors", e, &out)
}

// ListKnownErrors returns every known error.
func (c *Client) ListKnownErrors(ctx context.Context) ([]KnownError, error) {
	var out []KnownError
	return out, c.do(ctx, http.MethodGet, "/known-errors", nil, &out)
}

// PutSolution creates or updates a solution.
func (c *Client) PutSolution(ctx context.Context, s Solution) (Solution, error) {
	var out Solution
	return out, c.do(ctx, http.MethodPost, "/solutions", s, &out)
}

// LinkSolution records that a solution was tried for a known error.
func (c *Client) LinkSolution(ctx context.Context, errorID, solutionID string) error {
	return c.do(ctx, http.MethodPost, "/known-errors/"+url.PathEscape(errorID)+"/solutions/"+url.PathEscape(solutionID), nil, nil)
}

// VerifySolution marks whether a solution is known to work.
func (c *Client) VerifySolution(ctx context.Context, solutionID string, verified bool) error {
	return c.do(ctx, http.MethodPost, "/solutions/"+url.PathEscape(solutionID)+"/verify", VerifyRequest{Verified: &verified}, nil)
}

// SolutionsFor lists a known error's solutions, verified first.
func (c *Client) SolutionsFor(ctx context.Context, errorID string) ([]Solution, error) {
	var out []Solution
	return out, c.do(ctx, http.MethodGet, "/known-errors/"+url.PathEscape(errorID)+"/solutions", nil, &out)
}

// AddIncident records a document where a known error showed.
func (c *Client) AddIncident(ctx context.Context, errorID, documentID string) error {
	return c.do(ctx, http.MethodPost, "/known-errors/"+url.PathEscape(errorID)+"/incidents", IncidentRequest{DocumentID: documentID}, nil)
}

// Health asks /healthz.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	return out, c.do(ctx, http.MethodGet, "/healthz", nil, &out)
}

// do sends one JSON request; a non-2xx answer becomes an error wrapping
// ErrInvalid, ErrNotFound or ErrUnavailable so callers can tell whose fault
// it was, with the server's message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("cortex %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("cortex %s %s: %w", method, path, err)
	}
	if method == http.MethodPost {
		// Cortex refuses a POST not declared JSON, even one without a body.
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: cortex %s %s: %w", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: cortex %s %s: read answer: %w", ErrUnavailable, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		kind := ErrUnavailable
		switch {
		case resp.StatusCode == http.StatusNotFound:
			kind = ErrNotFound
		case resp.StatusCode/100 == 4:
			kind = ErrInvalid
		}
		return fmt.Errorf("cortex %s %s: %s: %w", method, path, resp.Status, kinded{kind, msg})
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: cortex %s %s: decode answer: %w", ErrUnavailable, method, path, err)
	}
	return nil
}
