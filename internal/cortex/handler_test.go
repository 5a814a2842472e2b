package cortex_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
	"github.com/cluster-shepherd/shepherd/internal/cortex/ollama"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
)

func serve(t *testing.T, s *cortex.Service) (*httptest.Server, *cortex.Client) {
	t.Helper()
	srv := httptest.NewServer(cortex.NewHandler(s))
	t.Cleanup(srv.Close)
	c, err := cortex.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	srv, c := serve(t, newService(t, cortex.Options{}))
	var m cortex.Memory = c
	n, err := m.Ingest(ctx, cortex.IngestRequest{Collection: cortex.CollectionEvents, Documents: []cortex.Document{
		{ID: "e1", Cluster: "prod", Text: "Back-off restarting failed container api in pod api-7d9 (CrashLoopBackOff)", Metadata: map[string]string{"object": "Pod prod/api-7d9"}},
		{ID: "e2", Cluster: "prod", Text: "0/3 nodes are available: 3 Insufficient memory"},
	}})
	if err != nil || n.Upserted != 2 {
		t.Fatalf("ingest: %+v, %v", n, err)
	}
	e, err := c.PutKnownError(ctx, cortex.KnownError{Pattern: "CrashLoopBackOff api container", Incidents: []string{"e1"}})
	if err != nil {
		t.Fatal(err)
	}
	sol, err := c.PutSolution(ctx, cortex.Solution{Description: "raise the api memory limit to 512Mi", ErrorIDs: []string{e.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.VerifySolution(ctx, sol.ID, true); err != nil {
		t.Fatal(err)
	}
	q, err := m.Query(ctx, cortex.QueryRequest{Query: "api pod keeps crashlooping", TopK: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Hits) == 0 || q.Hits[0].ID != "e1" || q.Hits[0].Source != "Pod prod/api-7d9" || len(q.Hits[0].Matched) == 0 {
		t.Fatalf("hits %+v", q.Hits)
	}
	vs := strings.Index(q.MergedContext, "## Verified solutions")
	ev := strings.Index(q.MergedContext, "## Matching events")
	if vs != 0 || ev < 0 || !strings.Contains(q.MergedContext, "raise the api memory limit") {
		t.Fatalf("merged context:\n%s", q.MergedContext)
	}
	if err := m.RecordOutcome(ctx, cortex.OutcomeRecord{Action: "scale api to 0", Tool: "scale_workload",
		Arguments: map[string]any{"namespace": "prod", "name": "api", "replicas": 0}, Outcome: cortex.OutcomeFailed}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Risk(ctx, cortex.RiskRequest{Action: "scale api to zero", Tool: "scale_workload", Arguments: map[string]any{"namespace": "prod", "name": "api", "replicas": 0}})
	if err != nil || r.Class != "delete" || r.Recommendation != cortex.Review || len(r.SimilarIncidents) != 1 {
		t.Fatalf("risk: %+v, %v", r, err)
	}
	sols, err := c.SolutionsFor(ctx, e.ID)
	if err != nil || len(sols) != 1 || !sols[0].Verified {
		t.Fatalf("solutions: %+v, %v", sols, err)
	}
	if err := c.LinkSolution(ctx, "missing", sol.ID); !errors.Is(err, cortex.ErrNotFound) {
		t.Fatalf("link to missing error: %v", err)
	}
	if err := c.AddIncident(ctx, e.ID, "e2"); err != nil {
		t.Fatal(err)
	}
	if list, err := c.ListKnownErrors(ctx); err != nil || len(list) != 1 || len(list[0].Incidents) != 2 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" || h.Documents != 3 || h.Embedder != "lexical-v1-256" {
		t.Fatalf("health %+v, %v", h, err)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cortex_requests_total{code="200",endpoint="query"} 1`, `cortex_documents{collection="cluster_events"} 2`, "cortex_request_duration_seconds_bucket"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestBadInputGetsAClearAnswerAndServiceKeepsServing(t *testing.T) {
	srv, c := serve(t, newService(t, cortex.Options{MaxDocumentBytes: 1000}))
	for _, tc := range []struct {
		path, body string
		code       int
		msg        string
	}{
		{"/ingest", `{"collection": "cluster_events", "documents": [`, 400, "malformed JSON"},
		{"/ingest", ``, 400, "request body is empty"},
		{"/ingest", `{"collection": "secrets", "documents": [{"id": "a", "text": "x"}]}`, 400, `unknown collection \"secrets\"`},
		{"/ingest", `{"collection": "documentation", "documents": [{"id": "a", "text": "` + strings.Repeat("x", 1001) + `"}]}`, 400, "the limit is 1000"},
		{"/ingest", `{"collection": "documentation", "documents": [{"id": "", "text": "x"}]}`, 400, "id is empty"},
		{"/ingest", `{"collection": "documentation", "documents": "nope"}`, 400, "malformed JSON"},
		{"/query", `{"query": "   "}`, 400, "query is empty"},
		{"/query", `{"query": "x", "collections": ["nope"]}`, 400, `unknown collection \"nope\"`},
		{"/query", `{"query": "x", "top_k": -1}`, 400, "top_k must not be negative"},
		{"/query", `{"query": "x"} {"query": "y"}`, 400, "more than one value"},
		{"/risk", `{"action": ""}`, 400, "action is empty"},
		{"/outcomes", `{"action": "restart x", "outcome": "meh"}`, 400, "outcome must be"},
		{"/solutions/missing/verify", `{"verified": true}`, 404, "not found"},
		{"/nope", `{}`, 404, "no endpoint"},
	} {
		code, body := post(t, srv.URL+tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, `"error":`) || !strings.Contains(body, tc.msg) {
			t.Errorf("POST %s %.40q: %d %s; want %d with %q", tc.path, tc.body, code, body, tc.code, tc.msg)
		}
	}
	big := `{"collection": "documentation", "documents": [{"id": "a", "text": "` + strings.Repeat("x", cortex.MaxRequestBytes) + `"}]}`
	if code, body := post(t, srv.URL+"/ingest", big); code != 413 || !strings.Contains(body, "larger than") {
		t.Errorf("oversized body: %d %.200s", code, body)
	}
	if h, err := c.Health(context.Background()); err != nil || h.Documents != 0 {
		t.Fatalf("after bad input: %+v, %v", h, err)
	}
	if _, err := c.Query(context.Background(), cortex.QueryRequest{Query: ""}); !errors.Is(err, cortex.ErrInvalid) || !strings.Contains(err.Error(), "query is empty") {
		t.Fatalf("client error for empty query: %v", err)
	}
}

func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestDeadEmbedderAndDeadDatabase(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	dead, _ := ollama.New(deadURL(t), "", nil)
	s, _ := cortex.NewService(cortex.Deps{Documents: st, Vectors: st, Graph: st, Embedder: dead}, cortex.Options{})
	srv, c := serve(t, s)
	code, body := post(t, srv.URL+"/ingest", `{"collection": "documentation", "documents": [{"id": "a", "text": "OOMKilled runbook"}]}`)
	if code != 503 || !strings.Contains(body, "ollama embed") {
		t.Fatalf("ingest with a dead embedder: %d %s", code, body)
	}
	if n, _ := st.Count(ctx, ""); n != 0 {
		t.Fatal("a failed ingest left a document behind")
	}
	// Query degrades to keyword search and says so.
	live, _ := cortex.NewService(cortex.Deps{Documents: st, Vectors: st, Graph: st, Embedder: lexical.New(0)}, cortex.Options{})
	if _, err := live.Ingest(ctx, cortex.IngestRequest{Collection: cortex.CollectionDocs, Documents: []cortex.Document{{ID: "a", Text: "OOMKilled runbook"}}}); err != nil {
		t.Fatal(err)
	}
	q, err := c.Query(ctx, cortex.QueryRequest{Query: "OOMKilled"})
	if err != nil || len(q.Hits) != 1 || len(q.Warnings) != 1 || !strings.Contains(q.Warnings[0], "keyword results only") {
		t.Fatalf("query with a dead embedder: %+v, %v", q, err)
	}
	st.Close()
	if code, body := post(t, srv.URL+"/query", `{"query": "OOMKilled"}`); code != 503 || !strings.Contains(body, "closed") {
		t.Fatalf("query with a closed database: %d %s", code, body)
	}
	if h, err := c.Health(ctx); err == nil || !errors.Is(err, cortex.ErrUnavailable) {
		t.Fatalf("health with a closed database: %+v, %v", h, err)
	}
	if code, _ := post(t, srv.URL+"/query", `{"query": ""}`); code != 400 {
		t.Fatalf("service stopped answering: %d", code)
	}
	if _, err := cortex.NewClient(deadURL(t), nil); err != nil {
		t.Fatal(err)
	}
	dc, _ := cortex.NewClient(deadURL(t), nil)
	if _, err := dc.Risk(ctx, cortex.RiskRequest{Action: "x"}); !errors.Is(err, cortex.ErrUnavailable) {
		t.Fatalf("client of a dead server: %v", err)
	}
	if _, err := cortex.NewClient("http://user:secret@127.0.0.1:1/", nil); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownFieldsAreRefused(t *testing.T) {
	srv, _ := serve(t, newService(t, cortex.Options{}))
	for _, tc := range []struct{ path, body, field string }{
		{"/query", `{"query": "x", "collection": "documentation"}`, `unknown field \"collection\"`},
		{"/query", `{"query": "x", "topk": 3}`, `unknown field \"topk\"`},
		{"/ingest", `{"collection": "documentation", "documents": [{"id": "a", "text": "x", "txet": "y"}]}`, `unknown field \"txet\"`},
		{"/risk", `{"action": "restart x", "args": {}}`, `unknown field \"args\"`},
	} {
		code, body := post(t, srv.URL+tc.path, tc.body)
		if code != 400 || !strings.Contains(body, tc.field) {
			t.Errorf("POST %s %s: %d %s; want 400 naming %s", tc.path, tc.body, code, body, tc.field)
		}
	}
}

func TestPostMustBeDeclaredJSON(t *testing.T) {
	srv, c := serve(t, newService(t, cortex.Options{}))
	send := func(path, ct, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ingest := `{"collection": "documentation", "documents": [{"id": "a", "text": "OOMKilled runbook"}]}`
	// What a cross-site form or fetch without preflight can send.
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		if code, body := send("/ingest", ct, ingest); code != 415 || !strings.Contains(body, "application/json") {
			t.Errorf("Content-Type %q: %d %s; want 415", ct, code, body)
		}
	}
	if code, body := send("/solutions/x/verify", "text/plain", ""); code != 415 {
		t.Errorf("empty text/plain POST: %d %s; want 415", code, body)
	}
	if h, err := c.Health(context.Background()); err != nil || h.Documents != 0 {
		t.Fatalf("a refused POST was stored: %+v, %v", h, err)
	}
	if code, body := send("/ingest", "application/json; charset=utf-8", ingest); code != 200 {
		t.Errorf("JSON with charset: %d %s", code, body)
	}
	// The client declares JSON on every POST, body or not.
	if err := c.LinkSolution(context.Background(), "missing", "also-missing"); !errors.Is(err, cortex.ErrNotFound) {
		t.Fatalf("link through the client: %v", err)
	}
}

func TestReportOverHTTP(t *testing.T) {
	ctx := context.Background()
	s := newService(t, cortex.Options{})
	seedHistory(t, s)
	srv, c := serve(t, s)
	got, err := c.Report(ctx, cortex.ReportRequest{Cluster: "feature-1", Top: 2})
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Report(ctx, cortex.ReportRequest{Cluster: "feature-1", Top: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("over HTTP:\n%+v\nin process:\n%+v", got, want)
	}
	if code, body := post(t, srv.URL+"/report", `{"cluster": "nowhere", "since": "2026-04-30T00:00:00Z"}`); code != 200 ||
		!strings.Contains(body, `"since":"2026-04-30T00:00:00Z"`) || !strings.Contains(body, "No incidents recorded") {
		t.Fatalf("report of an unknown cluster: %d %s", code, body)
	}
	for _, tc := range []struct{ body, msg string }{
		{`{}`, "cluster is empty"},
		{`{"cluster": "feature-1", "top": 101}`, "top must be between 1 and 100"},
		{`{"cluster": "feature-1", "since": "2999-01-01T00:00:00Z"}`, "is in the future"},
		{`{"cluster": "feature-1", "since": "last week"}`, "malformed JSON"},
		{`{"cluster": "feature-1", "window": "7d"}`, `unknown field \"window\"`},
		{``, "request body is empty"},
	} {
		if code, body := post(t, srv.URL+"/report", tc.body); code != 400 || !strings.Contains(body, tc.msg) {
			t.Errorf("POST /report %s: %d %s; want 400 with %q", tc.body, code, body, tc.msg)
		}
	}
	if _, err := c.Report(ctx, cortex.ReportRequest{Cluster: "feature-1", Top: -1}); !errors.Is(err, cortex.ErrInvalid) || !strings.Contains(err.Error(), "top must be") {
		t.Fatalf("client error for a bad top: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/report", strings.NewReader(`{"cluster": "feature-1"}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Fatalf("text/plain POST /report: %d, want 415", resp.StatusCode)
	}
}
