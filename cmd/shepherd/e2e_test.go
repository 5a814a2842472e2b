package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cluster-shepherd/shepherd/internal/testenv"
)

var (
	env *testenv.Env
	sc  *testenv.Scenario
	bin string // the shepherd binary under test
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shepherd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "shepherd")
	build := []string{"build", "-o", bin}
	if os.Getenv("SHEPHERD_E2E_RACE") != "" {
		// The race detector in the server under test; reports go where
		// GORACE=log_path=... says.
		build = append(build, "-race")
	}
	if out, err := exec.Command("go", append(build, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build shepherd: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err = testenv.Start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "control plane:", err)
		return 1
	}
	defer env.Stop()
	sc, err = testenv.Seed(ctx, env.Config, testenv.SeedOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		return 1
	}
	defer sc.Close()
	return m.Run()
}

const testToken = "e2e-token-0123456789"

// shepherdProc is a running `shepherd serve`.
type shepherdProc struct {
	base    string
	dataDir string
	cmd     *exec.Cmd
	stderr  *syncLog // written by a reader goroutine while tests read it
}

// syncLog is a stderr sink tests can read while the process writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) add(s string) { l.mu.Lock(); l.b.WriteString(s + "\n"); l.mu.Unlock() }
func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls read until it contains want, for up to five seconds.
func waitFor(read func() string, want string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(read(), want) {
			return true
		}
	}
	return false
}

// startServe runs `shepherd serve` on a random loopback port and waits until
// /readyz answers 200.
func startServe(t *testing.T, extra ...string) *shepherdProc {
	t.Helper()
	return startServeDir(t, t.TempDir(), extra...)
}

// startServeDir is startServe on a given data directory.
func startServeDir(t *testing.T, dataDir string, extra ...string) *shepherdProc {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	args := append([]string{"serve", "--kubeconfig", env.KubeconfigPath, "--listen", "127.0.0.1:0",
		"--data-dir", dataDir, "--auth-token-file", tokenFile}, extra...)
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &shepherdProc{cmd: cmd, stderr: &syncLog{}, dataDir: dataDir}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		pw.Close()
		if t.Failed() {
			t.Logf("shepherd stderr:\n%s", p.stderr.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 4<<20) // a long log line must not stop the reader (and block the process)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.add(line)
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "serving MCP" {
				addr <- rec["addr"].(string)
			}
		}
	}()
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("shepherd did not start:\n%s", p.stderr.String())
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("shepherd never became ready:\n%s", p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type headerRT struct {
	token string
	next  http.RoundTripper
}

func (h headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if h.token != "" {
		r.Header.Set("Authorization", "Bearer "+h.token)
	}
	return h.next.RoundTrip(r)
}

func httpClient(token string) *http.Client {
	return &http.Client{Transport: headerRT{token: token, next: http.DefaultTransport}}
}

func connect(t *testing.T, tr mcp.Transport) *mcp.ClientSession {
	t.Helper()
	// The legacy SSE transport keeps its event stream on the Connect
	// context, so it must outlive this function.
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	s, err := c.Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// call invokes a tool and returns its text and isError.
func call(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

var observationTools = []string{"get_cluster_alerts", "get_pod_logs", "get_node_status", "get_flux_status", "list_workloads", "get_node_list"}

func checkToolList(t *testing.T, s *mcp.ClientSession) map[string]*mcp.Tool {
	t.Helper()
	res, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*mcp.Tool{}
	for _, tl := range res.Tools {
		byName[tl.Name] = tl
	}
	for _, n := range observationTools {
		tl, ok := byName[n]
		if !ok {
			t.Fatalf("tools/list lacks %s", n)
		}
		if tl.Annotations == nil || !tl.Annotations.ReadOnlyHint || tl.Annotations.DestructiveHint == nil || *tl.Annotations.DestructiveHint {
			t.Errorf("%s: want readOnlyHint and destructiveHint=false, got %+v", n, tl.Annotations)
		}
		if len(tl.Description) < 40 {
			t.Errorf("%s: description too thin: %q", n, tl.Description)
		}
	}
	return byName
}

func mustContain(t *testing.T, tool, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s answer lacks %q:\n%s", tool, w, text)
		}
	}
}

// exerciseObservation runs every observation tool against the seeded
// scenario and checks the answers name the real causes, compactly.
func exerciseObservation(t *testing.T, s *mcp.ClientSession) {
	alerts, isErr := call(t, s, "get_cluster_alerts", nil)
	if isErr {
		t.Fatalf("alerts: %s", alerts)
	}
	mustContain(t, "get_cluster_alerts", alerts,
		"CrashLoopBackOff", "OOMKilled", "ImagePullBackOff", sc.ImagePullImage, "Unschedulable",
		"ConversionWebhookFailed", sc.CRDGroup, sc.FailingKustomization.Name, "MemoryPressure", "folded")
	if strings.Index(alerts, "OOMKilled") > strings.Index(alerts, "Unschedulable") {
		t.Errorf("alerts not ranked by severity:\n%s", alerts)
	}
	if len(alerts) > 16<<10 {
		t.Errorf("alerts answer is %d bytes", len(alerts))
	}

	logs, isErr := call(t, s, "get_pod_logs", map[string]any{"namespace": sc.LogPod.Namespace, "pod": sc.LogPod.Name, "lines": 20})
	if isErr {
		t.Fatalf("logs: %s", logs)
	}
	for _, secret := range sc.SecretValues {
		if strings.Contains(logs, secret) {
			t.Errorf("log answer leaks secret %q", secret)
		}
	}
	if !strings.Contains(logs, "****") {
		t.Errorf("log answer shows no masking:\n%s", logs)
	}
	prev, isErr := call(t, s, "get_pod_logs", map[string]any{"namespace": sc.CrashLoopPod.Namespace, "pod": sc.CrashLoopPod.Name, "previous": true})
	if isErr || !strings.Contains(prev, "previous instance") {
		t.Errorf("previous logs: %v %s", isErr, prev)
	}
	// A container that never restarted has no previous logs: say so.
	if none, isErr := call(t, s, "get_pod_logs", map[string]any{"namespace": sc.LogPod.Namespace, "pod": sc.LogPod.Name, "previous": true}); !isErr || !strings.Contains(none, "has not terminated or restarted") {
		t.Errorf("previous logs of a container that never restarted: %v %s", isErr, none)
	}
	capped, isErr := call(t, s, "get_pod_logs", map[string]any{"namespace": sc.LogPod.Namespace, "pod": sc.LogPod.Name, "lines": 5000})
	if isErr || !strings.Contains(capped, "capped at 200 lines") {
		t.Errorf("lines cap: %v %s", isErr, capped)
	}

	nodes, _ := call(t, s, "get_node_status", nil)
	mustContain(t, "get_node_status", nodes, sc.MemoryPressureNode, "MemoryPressure", "control-plane")

	flux, isErr := call(t, s, "get_flux_status", nil)
	if isErr {
		t.Fatalf("flux: %s", flux)
	}
	mustContain(t, "get_flux_status", flux, sc.FailingKustomization.Name, "SUSPENDED", sc.SuspendedKustomization.Name)
	if strings.Index(flux, sc.FailingKustomization.Name) > strings.Index(flux, sc.SuspendedKustomization.Name) {
		t.Errorf("failing Kustomization not first:\n%s", flux)
	}

	wl, _ := call(t, s, "list_workloads", map[string]any{"namespace": "immich"})
	mustContain(t, "list_workloads", wl, "immich:", "deploy immich ", "ghcr.io/immich-app/")

	nl, _ := call(t, s, "get_node_list", nil)
	mustContain(t, "get_node_list", nl, "worker-1", "InternalIP")
}

func exerciseBadInput(t *testing.T, s *mcp.ClientSession) {
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"get_pod_logs", map[string]any{"namespace": "immich"}, "pod"},
		{"get_pod_logs", map[string]any{"namespace": "immich", "pod": "nope-123"}, "not found"},
		{"get_pod_logs", map[string]any{"namespace": "no-such-ns", "pod": "x"}, "namespace \"no-such-ns\" not found"},
		{"get_pod_logs", map[string]any{"namespace": "immich", "pod": "x", "lines": "abc"}, "lines"},
		{"get_pod_logs", map[string]any{"namespace": "immich", "pod": "x", "lines": -3}, "positive"},
		{"get_pod_logs", map[string]any{"namespace": "Bad_NS!", "pod": "x"}, "invalid namespace"},
		{"list_workloads", map[string]any{"namespace": 42}, "namespace"},
		{"get_cluster_alerts", map[string]any{"namespace": "missing"}, "not found"},
	}
	for _, c := range cases {
		text, isErr := call(t, s, c.tool, c.args)
		if !isErr || !strings.Contains(text, c.want) {
			t.Errorf("%s %v: want isError containing %q, got isError=%v %q", c.tool, c.args, c.want, isErr, text)
		}
		if strings.Contains(text, "goroutine") || strings.Contains(text, "panic") {
			t.Errorf("%s: stack trace in answer: %s", c.tool, text)
		}
	}
	_, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "no_such_tool"})
	if err == nil || !strings.Contains(err.Error(), "no_such_tool") {
		t.Errorf("unknown tool: got %v", err)
	}
}

func TestStreamableHTTP(t *testing.T) {
	p := startServe(t)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	checkToolList(t, s)
	exerciseObservation(t, s)
	exerciseBadInput(t, s)
}

func TestLegacySSE(t *testing.T) {
	p := startServe(t)
	s := connect(t, &mcp.SSEClientTransport{Endpoint: p.base + "/sse", HTTPClient: httpClient(testToken)})
	checkToolList(t, s)
	exerciseObservation(t, s)
}

func TestStdio(t *testing.T) {
	cmd := exec.Command(bin, "stdio", "--kubeconfig", env.KubeconfigPath, "--data-dir", t.TempDir())
	s := connect(t, &mcp.CommandTransport{Command: cmd})
	checkToolList(t, s)
	exerciseObservation(t, s)
	exerciseBadInput(t, s)
}

func TestBearerToken(t *testing.T) {
	p := startServe(t)
	for _, tok := range []string{"", "wrong-token"} {
		for _, path := range []string{"/mcp", "/sse"} {
			c := mcp.NewClient(&mcp.Implementation{Name: "e2e"}, nil)
			var tr mcp.Transport = &mcp.StreamableClientTransport{Endpoint: p.base + path, HTTPClient: httpClient(tok), MaxRetries: -1}
			if path == "/sse" {
				tr = &mcp.SSEClientTransport{Endpoint: p.base + path, HTTPClient: httpClient(tok)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if s, err := c.Connect(ctx, tr, nil); err == nil {
				s.Close()
				t.Errorf("%s with token %q: connected", path, tok)
			}
			cancel()
			req, _ := http.NewRequest("POST", p.base+path, strings.NewReader("{}"))
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || strings.Contains(string(body), testToken) {
				t.Errorf("%s token %q: status %d body %q", path, tok, resp.StatusCode, body)
			}
		}
	}
	// Probes and metrics stay open for the kubelet and Prometheus.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(p.base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", path, err, resp)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}

func TestReadOnlyAndToolLists(t *testing.T) {
	p := startServe(t, "--disable-tools", "get_pod_logs,get_node_list")
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	res, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range res.Tools {
		if tl.Name == "get_pod_logs" || tl.Name == "get_node_list" {
			t.Errorf("disabled tool %s listed", tl.Name)
		}
	}
	if _, isErr := call(t, s, "list_workloads", nil); isErr {
		t.Error("enabled tool failed")
	}

	ro := startServe(t, "--read-only")
	s = connect(t, &mcp.StreamableClientTransport{Endpoint: ro.base + "/mcp", HTTPClient: httpClient(testToken)})
	res, err = s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, tl := range res.Tools {
		listed[tl.Name] = true
		if tl.Annotations == nil || !tl.Annotations.ReadOnlyHint {
			t.Errorf("--read-only lists %s, which is not read-only", tl.Name)
		}
	}
	for _, n := range []string{"restart_workload", "scale_workload", "run_flux_op", "delete_crds", "queue_task", "approve_task"} {
		if listed[n] {
			t.Errorf("--read-only lists %s", n)
		}
	}
	for _, n := range []string{"get_cluster_alerts", "list_workloads", "query_cortex", "assess_risk", "list_pending_tasks"} {
		if !listed[n] {
			t.Errorf("--read-only hides %s", n)
		}
	}
	text, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "restart_workload", Arguments: map[string]any{"namespace": "immich", "name": "immich"}})
	if err == nil && !text.IsError {
		t.Error("restart_workload ran on a read-only server")
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"serve", "--listen", "0.0.0.0:0", "--kubeconfig", "x"}, nil, "refusing to listen on 0.0.0.0:0 without authentication"},
		{[]string{"serve", "--listen", "nonsense"}, nil, "want host:port"},
		{[]string{"serve", "--kubeconfig", "/nonexistent"}, nil, "load kubeconfig"},
		{[]string{"serve", "--enable-tools", "get_pod_log"}, nil, "unknown tool name(s) get_pod_log"},
		{[]string{"serve", "--max-response-bytes", "10"}, nil, "too small"},
		{[]string{"serve"}, []string{"SHEPHERD_READ_ONLY=maybe"}, "SHEPHERD_READ_ONLY"},
		{[]string{"serve", "--config", "/nonexistent.yaml"}, nil, "read config file"},
		{[]string{"stdio", "--kubeconfig", "/nonexistent"}, nil, "load kubeconfig"},
		{[]string{"stdio", "--kubeconfig", env.KubeconfigPath, "--approval", "out-of-band"}, nil, "stdio serves no admin API"},
		{[]string{"serve", "--kubeconfig", env.KubeconfigPath, "--listen", "127.0.0.1:0"},
			[]string{"SHEPHERD_AUTH_TOKEN=same-token-123", "SHEPHERD_ADMIN_TOKEN=same-token-123"}, "the admin token equals the MCP bearer token"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, append(c.args, "--data-dir", t.TempDir())...)
		cmd.Env = append(os.Environ(), c.env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: want failure with %q, got %v: %s", c.args, c.want, err, out)
		}
		if strings.Contains(string(out), "goroutine ") {
			t.Errorf("%v: stack trace: %s", c.args, out)
		}
		if strings.Contains(string(out), "same-token-123") {
			t.Errorf("%v: a token leaked into the error: %s", c.args, out)
		}
	}
}

// TestWithoutFlux runs against a second control plane that has no Flux CRDs:
// the Flux tool answers with a short tool error, and the others still work.
func TestWithoutFlux(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bare, err := testenv.Start(ctx, testenv.WithoutFlux())
	if err != nil {
		t.Fatal(err)
	}
	// Registered before connect, so it runs after the session is closed:
	// an API server stopping under open watches waits for them to drain.
	t.Cleanup(func() { bare.Stop() })
	cmd := exec.Command(bin, "stdio", "--kubeconfig", bare.KubeconfigPath, "--data-dir", t.TempDir())
	s := connect(t, &mcp.CommandTransport{Command: cmd})
	flux, isErr := call(t, s, "get_flux_status", nil)
	if !isErr || !strings.Contains(flux, "flux is not installed") || len(flux) > 300 {
		t.Errorf("get_flux_status without Flux: isError=%v %q", isErr, flux)
	}
	alerts, isErr := call(t, s, "get_cluster_alerts", nil)
	if isErr {
		t.Errorf("get_cluster_alerts without Flux: %s", alerts)
	}
	wl, isErr := call(t, s, "list_workloads", nil)
	if isErr {
		t.Errorf("list_workloads without Flux: %s", wl)
	}
}

// TestIdleSessionsClose: a Streamable HTTP session nobody uses for
// --session-idle-timeout is closed, so vanished clients do not pile up; the
// client's next call fails and a new session works.
func TestIdleSessionsClose(t *testing.T) {
	p := startServe(t, "--session-idle-timeout", "1s")
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken), MaxRetries: -1})
	if text, isErr := call(t, s, "list_workloads", map[string]any{"namespace": "immich"}); isErr {
		t.Fatalf("first call: %s", text)
	}
	time.Sleep(2500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "list_workloads", Arguments: map[string]any{"namespace": "immich"}}); err == nil {
		t.Fatal("a session idle past the timeout still answered")
	}
	s2 := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	if text, isErr := call(t, s2, "list_workloads", map[string]any{"namespace": "immich"}); isErr {
		t.Fatalf("new session: %s", text)
	}
}

// TestHelpIsClean: every command's --help works and shows each flag as
// "--name type   description" (pflag turns backquoted words in a usage
// string into the value's name, which garbles the line).
func TestHelpIsClean(t *testing.T) {
	garbled := regexp.MustCompile(`(?m)^\s+(-\w, )?--[\w-]+ \S+ \S`)
	for _, c := range [][]string{{"serve"}, {"stdio"}, {"cortex"}, {"cortex", "report"}, {"ingest", "docs"}, {"ingest", "manifests"},
		{"tasks", "list"}, {"tasks", "approve"}, {"version"}} {
		out, err := exec.Command(bin, append(c, "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("%v --help: %v\n%s", c, err, out)
			continue
		}
		if m := garbled.FindString(string(out)); m != "" {
			t.Errorf("%v --help garbles a flag: %q", c, m)
		}
	}
}

// TestBearerTokenRotates: a new token written to --auth-token-file (a
// rotated Kubernetes Secret) takes over without a restart; emptying the file
// never turns authentication off.
func TestBearerTokenRotates(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("first-token-123\n"), 0o600)
	p := startServe(t, "--auth-token-file", file)
	status := func(tok string) int {
		req, _ := http.NewRequest("POST", p.base+"/mcp", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status("first-token-123") == 401 {
		t.Fatal("the first token is refused")
	}
	// Kubernetes swaps a Secret's files by renaming; do the same.
	tmp := file + ".new"
	os.WriteFile(tmp, []byte("second-token-456\n"), 0o600)
	os.Rename(tmp, file)
	if !waitFor(func() string { return fmt.Sprint(status("second-token-456") != 401) }, "true") {
		t.Fatal("the rotated token was not taken up")
	}
	if status("first-token-123") != 401 {
		t.Fatal("the old token still works after rotation")
	}
	os.WriteFile(file, nil, 0o600)
	time.Sleep(1500 * time.Millisecond)
	if status("") != 401 || status("second-token-456") == 401 {
		t.Fatal("an emptied token file changed authentication")
	}
	if !waitFor(func() string { return p.stderr.String() }, "keeping the previous token") || strings.Contains(p.stderr.String(), "second-token-456") {
		t.Fatalf("log: %s", p.stderr.String())
	}
}
