package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// closedURL is an http URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

// writeRunbooks writes two runbook sections that both match "authentik
// restart", so a query has more than one hit to rerank.
func writeRunbooks(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "authentik.md"), []byte("# Authentik\n\n## Restart\n\nRestart authentik-server after the migration job finished.\n\n"+
		"## Restart the worker\n\nRestart authentik-worker when tasks pile up.\n"), 0o600)
	return dir
}

func TestCortexWarningsReachTheLog(t *testing.T) {
	deadReranker := closedURL(t)

	t.Run("shepherd cortex", func(t *testing.T) {
		var log syncLog
		url := runCortex(t, &log, "--reranker-url", deadReranker)
		if out, err := exec.Command(bin, "ingest", "docs", writeRunbooks(t), "--cortex-url", url).CombinedOutput(); err != nil {
			t.Fatalf("ingest: %v %s", err, out)
		}
		cl, err := cortex.NewClient(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		q, err := cl.Query(context.Background(), cortex.QueryRequest{Query: "restart authentik"})
		if err != nil || len(q.Warnings) == 0 {
			t.Fatalf("query: want a rerank warning, got %+v, %v", q, err)
		}
		if !waitFor(log.String, "rerank failed") {
			t.Fatalf("the rerank failure was not logged:\n%s", log.String())
		}
	})

	t.Run("shepherd serve", func(t *testing.T) {
		dataDir := t.TempDir()
		if out, err := exec.Command(bin, "ingest", "docs", writeRunbooks(t), "--data-dir", dataDir).CombinedOutput(); err != nil {
			t.Fatalf("ingest: %v %s", err, out)
		}
		p := startServeDir(t, dataDir, "--reranker-url", deadReranker)
		s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
		if text, isErr := call(t, s, "query_cortex", map[string]any{"query": "restart authentik", "collections": []string{"documentation"}}); isErr {
			t.Fatalf("query_cortex: %s", text)
		}
		if !waitFor(func() string { return p.stderr.String() }, "rerank failed") {
			t.Fatal("the rerank failure was not logged")
		}
	})
}

func TestRemoteCortexRefusesLocalCortexFlags(t *testing.T) {
	remote := closedURL(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--kubeconfig", env.KubeconfigPath, "--listen", "127.0.0.1:0", "--cortex-url", remote, "--qdrant-url", "qdrant:6334", "--embedder-model", "m"},
			"--embedder-model, --qdrant-url configure an in-process Cortex and belong to the remote Cortex"},
		{[]string{"serve", "--kubeconfig", env.KubeconfigPath, "--listen", "127.0.0.1:0", "--cortex-url", remote, "--risk-review-at", "0.3"},
			"--risk-review-at configure"},
		{[]string{"ingest", "docs", writeRunbooks(t), "--cortex-url", remote, "--reranker-url", "http://tei"},
			"--reranker-url configure"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(c.args, "--data-dir", t.TempDir())...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: want a refusal with %q, got %v: %s", c.args, c.want, err, out)
		}
	}
}

func TestCortexListenErrors(t *testing.T) {
	for _, c := range []struct {
		listen, want, not string
	}{
		{"nonsense", `--listen "nonsense": want host:port`, "token"},
		{"0.0.0.0:0", "refusing to serve Cortex on 0.0.0.0:0 without a token", "host:port"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, "cortex", "--listen", c.listen, "--data-dir", t.TempDir()).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), c.want) || strings.Contains(string(out), c.not) {
			t.Errorf("--listen %s: want failure with %q and without %q, got %v: %s", c.listen, c.want, c.not, err, out)
		}
	}
}
