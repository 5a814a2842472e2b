package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/backend"
)

// The write scenarios of the risk gate, end to end: the real binary with its
// in-process Cortex, the go-sdk client, the real API server.

func jsonField(t *testing.T, text, field string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, text)
	}
	return m[field]
}

func kube(t *testing.T) kubernetes.Interface {
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestScenarioRestartAuto(t *testing.T) {
	p := startServe(t)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	args := map[string]any{"namespace": "immich", "name": "immich", "kind": "Deployment"}

	// Without an assessment the write is refused and says what to do.
	text, isErr := call(t, s, "restart_workload", args)
	if !isErr || !strings.Contains(text, "assess_risk") {
		t.Fatalf("unassessed restart: isError=%v %s", isErr, text)
	}
	text, isErr = call(t, s, "assess_risk", map[string]any{"action": "restart immich, it is stuck", "tool": "restart_workload", "arguments": args})
	if isErr || jsonField(t, text, "recommendation") != "auto" {
		t.Fatalf("assess restart immich: want auto, got %s", text)
	}
	text, isErr = call(t, s, "restart_workload", args)
	if isErr || !strings.Contains(text, "restarted Deployment immich/immich") {
		t.Fatalf("restart: %v %s", isErr, text)
	}
	d, err := kube(t).AppsV1().Deployments("immich").Get(context.Background(), "immich", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Annotations[cluster.RestartedAtAnnotation] == "" {
		t.Fatalf("template annotation not set: %v %v", err, d.Spec.Template.Annotations)
	}
	// The authorization was used up.
	if text, isErr = call(t, s, "restart_workload", args); !isErr {
		t.Fatalf("second restart on one assessment ran: %s", text)
	}
	// The outcome went to Cortex, for the next assessment to see.
	q, isErr := call(t, s, "query_cortex", map[string]any{"query": "restart immich", "collections": []string{"chat_history"}})
	if isErr || !strings.Contains(q, "immich") || !strings.Contains(q, "succeeded") {
		t.Fatalf("outcome not in cortex: %v %s", isErr, q)
	}
}

func TestScenarioScaleToZeroNeedsApproval(t *testing.T) {
	p := startServe(t)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	args := map[string]any{"namespace": "immich", "name": "immich", "replicas": 0}
	text, _ := call(t, s, "assess_risk", map[string]any{"action": "scale immich to 0", "tool": "scale_workload", "arguments": args})
	if jsonField(t, text, "recommendation") != "review" {
		t.Fatalf("scale to 0: want review, got %s", text)
	}
	if text, isErr := call(t, s, "scale_workload", args); !isErr || !strings.Contains(text, "queue_task") {
		t.Fatalf("unapproved scale: %v %s", isErr, text)
	}
	text, isErr := call(t, s, "queue_task", map[string]any{"action": "scale immich to 0", "reason": "maintenance window", "tool": "scale_workload", "arguments": args})
	if isErr {
		t.Fatalf("queue: %s", text)
	}
	id, _ := jsonField(t, text, "task_id").(string)

	// Adversarial: a forged id, and arguments changed after approval.
	if text, isErr := call(t, s, "approve_task", map[string]any{"id": "forged-0000"}); !isErr {
		t.Fatalf("forged id approved: %s", text)
	}
	if text, isErr := call(t, s, "approve_task", map[string]any{"id": id}); isErr {
		t.Fatalf("approve: %s", text)
	}
	if text, isErr := call(t, s, "approve_task", map[string]any{"id": id}); !isErr {
		t.Fatalf("approved twice: %s", text)
	}
	for _, changed := range []map[string]any{
		{"namespace": "immich", "name": "immich", "replicas": 1},
		{"namespace": "authentik", "name": "authentik-server", "replicas": 0},
		{"namespace": "immich", "name": "postgres", "replicas": 0},
	} {
		if text, isErr := call(t, s, "scale_workload", changed); !isErr {
			t.Fatalf("changed arguments %v ran on the approval: %s", changed, text)
		}
	}
	text, isErr = call(t, s, "scale_workload", args)
	if isErr || !strings.Contains(text, "to 0 replicas") {
		t.Fatalf("approved scale: %v %s", isErr, text)
	}
	d, err := kube(t).AppsV1().Deployments("immich").Get(context.Background(), "immich", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 0 {
		t.Fatalf("replicas not 0: %v", err)
	}
	if text, isErr := call(t, s, "scale_workload", args); !isErr {
		t.Fatalf("second scale on one approval ran: %s", text)
	}
	// Put it back for the other tests, through the gate like anyone else.
	back := map[string]any{"namespace": "immich", "name": "immich", "replicas": 1}
	call(t, s, "assess_risk", map[string]any{"action": "scale immich back to 1", "tool": "scale_workload", "arguments": back})
	if text, isErr := call(t, s, "scale_workload", back); isErr {
		t.Fatalf("scale back to 1: %s", text)
	}
	// The audit log has the refusals and the executions.
	logs, _ := os.ReadFile(filepath.Join(p.dataDir, "audit.jsonl"))
	if !strings.Contains(string(logs), `"decision":"refused"`) || !strings.Contains(string(logs), `"decision":"executed"`) {
		t.Fatalf("audit log lacks refusals or executions:\n%s", logs)
	}
}

func TestScenarioHistoryRaisesRisk(t *testing.T) {
	dataDir := t.TempDir()
	svc, err := backend.Open(context.Background(), backend.Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	err = svc.RecordOutcome(context.Background(), cortex.OutcomeRecord{
		Action: "restarting authentik during a database migration caused a 20-minute outage", Tool: "restart_workload",
		Arguments: map[string]any{"namespace": "authentik", "name": "authentik-server", "kind": "Deployment"},
		Outcome:   cortex.OutcomeIncident, When: time.Now().Add(-48 * time.Hour),
	})
	svc.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := startServeDir(t, dataDir)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	text, _ := call(t, s, "assess_risk", map[string]any{"action": "restart authentik/authentik-server", "tool": "restart_workload",
		"arguments": map[string]any{"namespace": "authentik", "name": "authentik-server", "kind": "Deployment"}})
	if jsonField(t, text, "recommendation") != "review" || !strings.Contains(text, "outage") {
		t.Fatalf("restart authentik after an outage: want review citing it, got %s", text)
	}
	text, _ = call(t, s, "assess_risk", map[string]any{"action": "restart immich/immich", "tool": "restart_workload",
		"arguments": map[string]any{"namespace": "immich", "name": "immich", "kind": "Deployment"}})
	if jsonField(t, text, "recommendation") != "auto" {
		t.Fatalf("restart immich with no history: want auto, got %s", text)
	}
	q, isErr := call(t, s, "query_cortex", map[string]any{"query": "authentik outage after restart"})
	if isErr || !strings.Contains(q, "outage") {
		t.Fatalf("query_cortex: %v %s", isErr, q)
	}
	// Warning events from the live cluster reach Cortex in the background.
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, _ = call(t, s, "query_cortex", map[string]any{"query": "CrashLoopBackOff BackOff rspamd", "collections": []string{"cluster_events"}})
		if strings.Contains(q, "rspamd") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingested events never found:\n%s", q)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestScenarioOutOfBandApproval(t *testing.T) {
	adminTok := filepath.Join(t.TempDir(), "admin")
	os.WriteFile(adminTok, []byte("admin-secret-42"), 0o600)
	p := startServe(t, "--approval", "out-of-band", "--admin-token-file", adminTok)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	args := map[string]any{"operation": "suspend", "namespace": sc.SuspendedKustomization.Namespace, "name": sc.FailingKustomization.Name}
	text, _ := call(t, s, "assess_risk", map[string]any{"action": "suspend the failing kustomization", "tool": "run_flux_op", "arguments": args})
	if jsonField(t, text, "recommendation") == "auto" {
		t.Fatalf("suspend must not be auto: %s", text)
	}
	text, isErr := call(t, s, "queue_task", map[string]any{"action": "suspend failing kustomization", "reason": "stop the error loop", "tool": "run_flux_op", "arguments": args})
	if isErr {
		t.Fatal(text)
	}
	id := jsonField(t, text, "task_id").(string)
	if text, isErr := call(t, s, "approve_task", map[string]any{"id": id}); !isErr || !strings.Contains(text, "shepherd tasks approve") {
		t.Fatalf("chat approval in out-of-band mode: %v %s", isErr, text)
	}
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"tasks"}, append(args, "--server", p.base, "--admin-token-file", adminTok)...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli("list"); err != nil || !strings.Contains(out, id) {
		t.Fatalf("tasks list: %v %s", err, out)
	}
	if out, err := cli("approve", id); err != nil || !strings.Contains(out, "approved") {
		t.Fatalf("tasks approve: %v %s", err, out)
	}
	if text, isErr := call(t, s, "run_flux_op", args); isErr || !strings.Contains(text, "suspended") {
		t.Fatalf("approved suspend: %v %s", isErr, text)
	}
	// A wrong admin token is refused.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("nope"), 0o600)
	out, err := exec.Command(bin, "tasks", "list", "--server", p.base, "--admin-token-file", bad).CombinedOutput()
	if err == nil || strings.Contains(string(out), "admin-secret-42") {
		t.Fatalf("wrong admin token: %v %s", err, out)
	}
}

// TestScenarioOrphanedCRDs runs last in this package: it deletes the
// seeded CRDs.
func TestScenarioOrphanedCRDs(t *testing.T) {
	p := startServe(t)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	alerts, _ := call(t, s, "get_cluster_alerts", nil)
	mustContain(t, "get_cluster_alerts", alerts, "ConversionWebhookFailed", sc.CRDGroup)
	args := map[string]any{"domain": sc.CRDGroup}
	text, _ := call(t, s, "assess_risk", map[string]any{"action": "delete the orphaned longhorn CRDs", "tool": "delete_crds", "arguments": args})
	if jsonField(t, text, "recommendation") != "review" || !strings.Contains(text, "custom resources") {
		t.Fatalf("delete_crds: want review naming the custom resources, got %s", text)
	}
	if text, isErr := call(t, s, "delete_crds", args); !isErr {
		t.Fatalf("unapproved delete ran: %s", text)
	}
	text, _ = call(t, s, "queue_task", map[string]any{"action": "delete orphaned longhorn CRDs", "reason": "conversion webhook service is gone", "tool": "delete_crds", "arguments": args})
	id := jsonField(t, text, "task_id").(string)
	if text, isErr := call(t, s, "approve_task", map[string]any{"id": id}); isErr {
		t.Fatal(text)
	}
	text, isErr := call(t, s, "delete_crds", args)
	if isErr || !strings.Contains(text, "deleted") {
		t.Fatalf("approved delete: %v %s", isErr, text)
	}
	for _, name := range sc.CRDs {
		_, err := kubeExt(t).ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("CRD %s still there: %v", name, err)
		}
	}
	if sc.UnrelatedCRD != "" {
		if _, err := kubeExt(t).ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), sc.UnrelatedCRD, metav1.GetOptions{}); err != nil {
			t.Errorf("unrelated CRD %s went too: %v", sc.UnrelatedCRD, err)
		}
	}
	alerts, _ = call(t, s, "get_cluster_alerts", nil)
	if strings.Contains(alerts, "ConversionWebhookFailed") {
		t.Errorf("alerts still show the webhook after deletion:\n%s", alerts)
	}
}

func kubeExt(t *testing.T) apiextclient.Interface {
	c, err := apiextclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAuditOneRecordPerCall: a write refused before the gate (bad
// arguments) is audited as refused, and a call the gate audits itself is
// not written twice.
func TestAuditOneRecordPerCall(t *testing.T) {
	p := startServe(t)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	if text, isErr := call(t, s, "scale_workload", map[string]any{"namespace": "immich", "name": "Not_A_Name", "replicas": 2}); !isErr {
		t.Fatalf("bad name accepted: %s", text)
	}
	call(t, s, "assess_risk", map[string]any{"action": "restart immich", "tool": "restart_workload",
		"arguments": map[string]any{"namespace": "immich", "name": "immich", "kind": "Deployment"}})
	call(t, s, "list_workloads", map[string]any{"namespace": "immich"})

	b, err := os.ReadFile(filepath.Join(p.dataDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	byTool := map[string][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		tool, _ := rec["tool"].(string)
		byTool[tool] = append(byTool[tool], rec)
	}
	for tool, want := range map[string]string{"scale_workload": "refused", "assess_risk": "", "list_workloads": "allowed"} {
		recs := byTool[tool]
		if len(recs) != 1 {
			t.Fatalf("%s: want one audit record, got %d:\n%s", tool, len(recs), b)
		}
		if want != "" && recs[0]["decision"] != want {
			t.Errorf("%s: decision %v, want %s", tool, recs[0]["decision"], want)
		}
	}
	if !strings.Contains(fmt.Sprint(byTool["scale_workload"][0]["error"]), "Not_A_Name") {
		t.Errorf("refusal does not say why: %v", byTool["scale_workload"][0])
	}
	// The same counts reach Prometheus, beside the ingester's.
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`shepherd_audit_records_total{decision="refused",tool="scale_workload"} 1`,
		`shepherd_audit_records_total{decision="allowed",tool="list_workloads"} 1`, "shepherd_audit_write_failures_total 0",
		"shepherd_ingest_events_sent_total ", "shepherd_ingest_events_pending "} {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestLargeChangeKeepsTheVerdict: a GitOps change with a large file is
// assessed, queued and listed with its content shortened, so the answer
// stays whole JSON under the cap and the recommendation is never cut off.
func TestLargeChangeKeepsTheVerdict(t *testing.T) {
	p := startServe(t, "--max-response-bytes", "4096")
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	content := strings.Repeat("# keep the mail stack pinned to the tested release\n", 600) // ~30 KiB
	args := map[string]any{"operation": "update", "file_path": "clusters/home/mail.yaml", "content": content, "commit_message": "pin mail"}
	text, isErr := call(t, s, "assess_risk", map[string]any{"action": "pin the mail stack in git", "tool": "gitops_change", "arguments": args})
	if isErr {
		t.Fatalf("assess: %s", text)
	}
	if rec := jsonField(t, text, "recommendation"); rec == nil || jsonField(t, text, "next_step") == nil || len(text) > 4096 {
		t.Fatalf("verdict cut off (%d bytes): %.300s", len(text), text)
	}
	q, isErr := call(t, s, "queue_task", map[string]any{"action": "pin the mail stack in git", "reason": "upstream broke IMAP", "tool": "gitops_change", "arguments": args})
	if isErr {
		t.Fatalf("queue: %s", q)
	}
	id, _ := jsonField(t, q, "task_id").(string)
	list, _ := call(t, s, "list_pending_tasks", map[string]any{})
	if !strings.Contains(list, id) || !strings.Contains(list, "bytes in all") || len(list) > 4096 {
		t.Fatalf("pending list (%d bytes) lacks the task or its shortened content: %.500s", len(list), list)
	}
}

// TestAssessRefusesCallsThatCannotRun: assess_risk and queue_task check a
// write's arguments as the call would, so nothing is authorized or queued
// that could never run.
func TestAssessRefusesCallsThatCannotRun(t *testing.T) {
	p := startServe(t)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{}, "namespace is required"},
		{map[string]any{"namespace": "immich", "name": "immich", "kind": "Deployment", "force": true}, `unknown field "force"`},
		{map[string]any{"namespace": "immich", "name": "no-such-app", "kind": "Deployment"}, "not found"},
		{map[string]any{"namespace": "immich", "name": "immich", "kind": "CronJob"}, "kind"},
	} {
		for _, tool := range []string{"assess_risk", "queue_task"} {
			in := map[string]any{"action": "restart immich", "tool": "restart_workload", "arguments": c.args}
			if tool == "queue_task" {
				in["reason"] = "stuck"
			}
			text, isErr := call(t, s, tool, in)
			if !isErr || !strings.Contains(text, c.want) {
				t.Errorf("%s with %v: want an error naming %q, got %v %s", tool, c.args, c.want, isErr, text)
			}
		}
	}
	if list, _ := call(t, s, "list_pending_tasks", map[string]any{}); !strings.HasPrefix(list, "0 tasks") {
		t.Fatalf("a refused call was queued: %s", list)
	}
}

// TestBurstOfAutoWritesNeedsReview: however routine each write looks, more
// than --auto-write-limit of them in the window need a human.
func TestBurstOfAutoWritesNeedsReview(t *testing.T) {
	p := startServe(t, "--auto-write-limit", "1")
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	first, _ := call(t, s, "assess_risk", map[string]any{"action": "restart immich", "tool": "restart_workload",
		"arguments": map[string]any{"namespace": "immich", "name": "immich", "kind": "Deployment"}})
	if jsonField(t, first, "recommendation") != "auto" {
		t.Fatalf("first write: %s", first)
	}
	second, _ := call(t, s, "assess_risk", map[string]any{"action": "restart the immich ML service", "tool": "restart_workload",
		"arguments": map[string]any{"namespace": "immich", "name": "immich-machine-learning", "kind": "Deployment"}})
	if jsonField(t, second, "recommendation") != "review" || !strings.Contains(second, "limit 1") {
		t.Fatalf("second write in the window: %s", second)
	}
	if out, err := exec.Command(bin, "serve", "--kubeconfig", env.KubeconfigPath, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--auto-write-limit", "-1").CombinedOutput(); err == nil || !strings.Contains(string(out), "--auto-write-limit") {
		t.Fatalf("negative limit: %v %s", err, out)
	}
}

// TestGuardAnswersStayJSON: a guard answer over the byte cap drops its
// largest fields, names them, and stays valid JSON with the verdict.
func TestGuardAnswersStayJSON(t *testing.T) {
	p := startServe(t, "--max-response-bytes", "1024")
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	action := "restart immich because " + strings.Repeat("the thumbnails queue is stuck again ", 50) // ~1.8 KB
	text, isErr := call(t, s, "assess_risk", map[string]any{"action": action, "tool": "restart_workload",
		"arguments": map[string]any{"namespace": "immich", "name": "immich", "kind": "Deployment"}})
	if isErr || len(text) > 1024 {
		t.Fatalf("assess (%d bytes): %v %.200s", len(text), isErr, text)
	}
	if jsonField(t, text, "recommendation") != "auto" || jsonField(t, text, "next_step") == nil || !strings.Contains(fmt.Sprint(jsonField(t, text, "omitted")), "action") {
		t.Fatalf("verdict or omission note missing: %s", text)
	}
}
