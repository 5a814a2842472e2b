package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// startCortex runs `shepherd cortex` on a random loopback port with a token.
func startCortex(t *testing.T, token string) string {
	t.Helper()
	tf := filepath.Join(t.TempDir(), "ctoken")
	os.WriteFile(tf, []byte(token), 0o600)
	return runCortex(t, nil, "--auth-token-file", tf)
}

// runCortex runs `shepherd cortex` on a random loopback port with extra
// flags, copies its stderr into log when given, and returns its URL.
func runCortex(t *testing.T, log *syncLog, extra ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"cortex", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, extra...)...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait(); pw.Close() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 4<<20) // a long log line must not stop the reader (and block the process)
		for sc.Scan() {
			if log != nil {
				log.add(sc.Text())
			}
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "serving MCP" {
				addr <- rec["addr"].(string)
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		if log != nil {
			t.Fatalf("cortex did not start:\n%s", log.String())
		}
		t.Fatal("cortex did not start")
	}
	return ""
}

func TestRemoteCortexThroughTools(t *testing.T) {
	const ctoken = "cortex-token-abcdef"
	url := startCortex(t, ctoken)

	// Without the token the API refuses; probes stay open.
	resp, err := http.Post(url+"/query", "application/json", strings.NewReader(`{"query":"x"}`))
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("unauthenticated /query: %v %v", err, resp)
	}
	resp.Body.Close()
	if resp, err := http.Get(url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}

	// Record the outage through the HTTP API, as another cluster's shepherd would.
	cl, err := remoteCortex(url, writeTemp(t, ctoken))
	if err != nil {
		t.Fatal(err)
	}
	err = cl.RecordOutcome(context.Background(), cortex.OutcomeRecord{
		Action: "restarting authentik during a database migration caused a 20-minute outage", Tool: "restart_workload",
		Arguments: map[string]any{"namespace": "authentik", "name": "authentik-server", "kind": "Deployment"},
		Outcome:   cortex.OutcomeIncident, Cluster: "feature-1", When: time.Now().Add(-24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}

	// shepherd ingest docs into the remote Cortex.
	docs := t.TempDir()
	os.WriteFile(filepath.Join(docs, "authentik.md"), []byte("# Authentik\n\n## Restarting safely\n\nNever restart authentik-server while a database migration runs; wait for the migration job to finish.\n"), 0o600)
	out, err := exec.Command(bin, "ingest", "docs", docs, "--cortex-url", url, "--cortex-token-file", writeTemp(t, ctoken)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ingested") {
		t.Fatalf("ingest docs: %v %s", err, out)
	}

	p := startServe(t, "--cortex-url", url, "--cortex-token-file", writeTemp(t, ctoken))
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	text, _ := call(t, s, "assess_risk", map[string]any{"action": "restart authentik/authentik-server", "tool": "restart_workload",
		"arguments": map[string]any{"namespace": "authentik", "name": "authentik-server", "kind": "Deployment"}})
	if jsonField(t, text, "recommendation") != "review" || !strings.Contains(text, "outage") {
		t.Fatalf("remote history: want review citing the outage, got %s", text)
	}
	q, _ := call(t, s, "query_cortex", map[string]any{"query": "is it safe to restart authentik during a migration", "collections": []string{"documentation"}})
	if !strings.Contains(q, "migration") {
		t.Fatalf("runbook not found: %s", q)
	}
	// The outcome came from another cluster; the answer says which.
	if q, _ := call(t, s, "query_cortex", map[string]any{"query": "authentik outage database migration", "collections": []string{"chat_history"}}); !strings.Contains(q, "cluster feature-1]") {
		t.Fatalf("hit from another cluster not labelled: %s", q)
	}
	// Cortex refusing the query is the caller's mistake, not an outage.
	q, isErr := call(t, s, "query_cortex", map[string]any{"query": strings.Repeat("why ", 1500)})
	if !isErr || !strings.Contains(q, "the limit is 4096") || strings.Contains(q, "unavailable") {
		t.Fatalf("oversized query: want a short bad-argument error, got %v %s", isErr, q)
	}
}

func TestCortexDownFailsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	p := startServe(t, "--cortex-url", dead, "--risk-timeout", "2s")
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	args := map[string]any{"namespace": "immich", "name": "immich", "kind": "Deployment"}
	text, _ := call(t, s, "assess_risk", map[string]any{"action": "restart immich", "tool": "restart_workload", "arguments": args})
	if jsonField(t, text, "recommendation") != "review" {
		t.Fatalf("cortex down: want review, got %s", text)
	}
	if text, isErr := call(t, s, "restart_workload", args); !isErr {
		t.Fatalf("write ran while Cortex was down: %s", text)
	}
	if text, isErr := call(t, s, "query_cortex", map[string]any{"query": "anything"}); !isErr || !strings.Contains(text, "cortex unavailable") {
		t.Fatalf("query with cortex down: %v %s", isErr, text)
	}
}

func writeTemp(t *testing.T, content string) string {
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte(content), 0o600)
	return f
}
