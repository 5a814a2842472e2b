package guard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/guard/storetest"
)

type fixture struct {
	gate      *guard.Gate
	auditPath string
}

func newFixture(t *testing.T, approval string) fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := guard.OpenFileStore(filepath.Join(dir, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ap := filepath.Join(dir, "audit.jsonl")
	al, err := guard.OpenAuditLog(ap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	g, err := guard.New(guard.Options{Memory: storetest.NewMemory(guard.Review), Store: store, Audit: al,
		Floors: guard.DefaultFloors("shepherd"), Approval: approval, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{gate: g, auditPath: ap}
}

func TestAdminEndpoint(t *testing.T) {
	ctx := guard.WithClient(context.Background(), "mcp-session-1")
	f := newFixture(t, guard.ApprovalOutOfBand)
	const token = "admin-token-0123456789"
	srv := httptest.NewServer(guard.AdminHandler(f.gate, token))
	defer srv.Close()
	args := map[string]any{"namespace": "shop", "name": "web", "replicas": 0, "kind": "Deployment"}
	tk, err := f.gate.Queue(ctx, guard.QueueInput{Action: "stop web", Reason: "incident 42", Tool: "scale_workload", Args: args})
	if err != nil {
		t.Fatal(err)
	}
	gitTask, err := f.gate.Queue(ctx, guard.QueueInput{Action: "rotate", Reason: "r", Tool: "gitops_change",
		Args: map[string]any{"operation": "update", "file_path": "a.yaml", "content": "password: hunter2hunter2", "commit_message": "x"}})
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"prefix of token", "Bearer admin-token", http.StatusUnauthorized},
		{"not bearer", "Basic " + token, http.StatusUnauthorized},
		{"right token", "Bearer " + token, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/tasks", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}

	cl := &guard.AdminClient{BaseURL: srv.URL, Token: token}
	list, err := cl.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != tk.ID {
		t.Fatalf("pending: %+v", list)
	}
	if strings.Contains(string(list[1].Arguments), "hunter2") {
		t.Fatalf("admin list leaks a secret: %s", list[1].Arguments)
	}
	if _, err := cl.Approve(ctx, "t-forged", "alice"); !errors.Is(err, guard.ErrNotFound) {
		t.Fatalf("forged id: %v", err)
	}
	if _, err := f.gate.Approve(ctx, tk.ID, "model", guard.ChannelChat); !errors.Is(err, guard.ErrOutOfBand) {
		t.Fatalf("chat approval: %v", err)
	}
	got, err := cl.Approve(ctx, tk.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != guard.StateApproved || got.ApprovedBy != "admin:alice" || got.ApprovedVia != guard.ChannelAdmin {
		t.Fatalf("approved: %+v", got)
	}
	if _, err := cl.Approve(ctx, tk.ID, "bob"); !errors.Is(err, guard.ErrConflict) {
		t.Fatalf("approve twice: %v", err)
	}
	if _, err := cl.Reject(ctx, gitTask.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if all, err := cl.List(ctx, "all"); err != nil || len(all) != 2 {
		t.Fatalf("all: %d %v", len(all), err)
	}
	if _, err := cl.List(ctx, "bogus"); err == nil {
		t.Fatal("unknown state must fail")
	}

	auth, err := f.gate.Authorize(ctx, "scale_workload", args)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gate.Finish(ctx, auth, "scaled shop/web to 0", nil); err != nil {
		t.Fatal(err)
	}

	disabled := httptest.NewServer(guard.AdminHandler(f.gate, ""))
	defer disabled.Close()
	if _, err := (&guard.AdminClient{BaseURL: disabled.URL, Token: ""}).List(ctx, ""); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("empty admin token must disable the endpoint: %v", err)
	}

	recs := readAudit(t, f.auditPath)
	var decisions []string
	for _, r := range recs {
		decisions = append(decisions, r.Tool+"/"+r.Decision)
		if r.Client == "" {
			t.Errorf("record without client: %+v", r)
		}
	}
	joined := strings.Join(decisions, " ")
	for _, want := range []string{"queue_task/allowed", "approve_task/allowed", "scale_workload/authorized", "scale_workload/executed", "reject_task/allowed"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit log lacks %s: %s", want, joined)
		}
	}
	raw, _ := os.ReadFile(f.auditPath)
	if strings.Contains(string(raw), "hunter2") || strings.Contains(string(raw), token) {
		t.Fatal("audit log holds a secret")
	}
	last := recs[len(recs)-1]
	if last.Decision != guard.DecisionExecuted || last.Authorization != tk.ID || last.Result != "scaled shop/web to 0" || last.Client != "mcp-session-1" {
		t.Fatalf("last record: %+v", last)
	}
}

func readAudit(t *testing.T, path string) []guard.AuditRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []guard.AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r guard.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestMask(t *testing.T) {
	cases := map[string]string{
		"Authorization: Bearer abcdefghijklmnop":                               "Authorization: Bearer ***",
		"password=hunter2hunter2 user=bob":                                     "password=*** user=bob",
		`{"token": "xyz123456"}`:                                               `{"token": "***"}`,
		"postgres://app:s3cret@db:5432/app":                                    "postgres://app:***@db:5432/app",
		"replicas scaled to 3":                                                 "replicas scaled to 3",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----": "***",
	}
	for in, want := range cases {
		if got := guard.MaskText(in); got != want {
			t.Errorf("MaskText(%q) = %q, want %q", in, got, want)
		}
	}
	args := guard.MaskArgs(map[string]any{
		"namespace": "shop", "api_key": "k-123", "nested": map[string]any{"Password": "p", "list": []any{"Bearer abcdefghijkl"}},
	})
	b, _ := json.Marshal(args)
	if s := string(b); strings.Contains(s, "k-123") || strings.Contains(s, `"p"`) || strings.Contains(s, "abcdefghijkl") || !strings.Contains(s, "shop") {
		t.Fatalf("MaskArgs = %s", s)
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	store, _ := guard.OpenFileStore(dir)
	defer store.Close()
	al, _ := guard.OpenAuditLog(filepath.Join(dir, "a.jsonl"))
	defer al.Close()
	for name, o := range map[string]guard.Options{
		"no store":     {Audit: al},
		"no audit":     {Store: store},
		"bad approval": {Store: store, Audit: al, Approval: "sometimes"},
		"bad deny":     {Store: store, Audit: al, Floors: guard.FloorConfig{Deny: []string{"[x"}}},
	} {
		if _, err := guard.New(o); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := guard.OpenFileStore(""); err == nil {
		t.Error("empty store dir must fail")
	}
}
