package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcd/gitkit"
	"github.com/fluxcd/pkg/gittestserver"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cluster-shepherd/shepherd/internal/gitops"
	"github.com/cluster-shepherd/shepherd/internal/nodes/sshtest"
)

const (
	testUser   = "shepherd"
	testPass   = "s3cret-token-value-0123456789"
	testBranch = "main"
	repoPath   = "org/fleet.git"
)

// server is a real Git smart-HTTP server on loopback with basic auth.
type server struct {
	t   *testing.T
	srv *gittestserver.GitServer
}

func (s *server) url() string     { return s.srv.HTTPAddress() + "/" + repoPath }
func (s *server) credURL() string { return s.srv.HTTPAddressWithCredentials() + "/" + repoPath }

func newServer(t *testing.T) *server {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (the test server runs git http-backend's protocol through it)")
	}
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(srv.Root()) })
	srv.Auth(testUser, testPass)
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	fixture := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fixture, "clusters", "prod"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fixture, "clusters", "prod", "app.yaml"), []byte("replicas: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.InitRepo(fixture, testBranch, repoPath); err != nil {
		t.Fatal(err)
	}
	return &server{t: t, srv: srv}
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Other", "GIT_AUTHOR_EMAIL=other@example.invalid",
		"GIT_COMMITTER_NAME=Other", "GIT_COMMITTER_EMAIL=other@example.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// clone makes a fresh clone with the git command line, as a person would.
func (s *server) clone() string {
	s.t.Helper()
	dir := s.t.TempDir()
	runGit(s.t, dir, "clone", "-q", "-b", testBranch, s.credURL(), ".")
	return dir
}

// pushOther commits a file from another clone, as a concurrent writer would.
func (s *server) pushOther(p, content string) {
	s.t.Helper()
	dir := s.clone()
	full := filepath.Join(dir, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	runGit(s.t, dir, "add", "-A")
	runGit(s.t, dir, "commit", "-q", "-m", "other writer")
	runGit(s.t, dir, "push", "-q", "origin", testBranch)
}

func readIn(t *testing.T, dir, p string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, p))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func newBackend(t *testing.T, s *server, dataDir string) *Backend {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(pwFile, []byte(testPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{URL: s.url(), Branch: testBranch, DataDir: dataDir,
		Auth:       Auth{Username: testUser, PasswordFile: pwFile},
		AuthorName: "Shepherd", AuthorEmail: "shepherd@example.invalid",
		CommitURL: "https://forge.example/org/fleet/commit/{id}"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateUpdateDelete(t *testing.T) {
	s := newServer(t)
	b := newBackend(t, s, t.TempDir())
	svc := &gitops.Service{Guard: gitops.Guard{MessagePrefix: "shepherd: "}, Backend: b}
	ctx := context.Background()
	const p = "clusters/prod/web.yaml"

	c1, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: p, Content: "replicas: 2\n", Message: "add web", TaskID: "task-1"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	dir := s.clone()
	if head := runGit(t, dir, "rev-parse", "HEAD"); head != c1.ID {
		t.Fatalf("create returned %s, remote head is %s", c1.ID, head)
	}
	if c1.URL != "https://forge.example/org/fleet/commit/"+c1.ID {
		t.Errorf("link %q", c1.URL)
	}
	if got, _ := readIn(t, dir, p); got != "replicas: 2\n" {
		t.Fatalf("fresh clone sees %q", got)
	}
	if msg := runGit(t, dir, "log", "-1", "--format=%B"); msg != "shepherd: add web\n\nShepherd-Task: task-1" {
		t.Errorf("message %q", msg)
	}
	if a := runGit(t, dir, "log", "-1", "--format=%an <%ae>"); a != "Shepherd <shepherd@example.invalid>" {
		t.Errorf("author %q", a)
	}
	if got, err := svc.Read(ctx, p); err != nil || got != "replicas: 2\n" {
		t.Fatalf("read: %q %v", got, err)
	}

	c2, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: p, Content: "replicas: 3\n", Message: "scale web", TaskID: "task-2"})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	dir = s.clone()
	if got, _ := readIn(t, dir, p); got != "replicas: 3\n" || runGit(t, dir, "rev-parse", "HEAD") != c2.ID {
		t.Fatalf("fresh clone after update sees %q", got)
	}
	if parent := runGit(t, dir, "rev-parse", "HEAD^"); parent != c1.ID {
		t.Errorf("update is not on top of create: parent %s", parent)
	}

	c3, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpDelete, Path: p, Message: "drop web", TaskID: "task-3"})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	dir = s.clone()
	if _, ok := readIn(t, dir, p); ok || runGit(t, dir, "rev-parse", "HEAD") != c3.ID {
		t.Fatal("fresh clone still has the file after delete")
	}
	if _, err := svc.Read(ctx, p); !errors.Is(err, gitops.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}

	// A second Backend on the same data directory reuses the clone and sees
	// commits made elsewhere.
	s.pushOther("clusters/prod/other.yaml", "x: 1\n")
	b2 := newBackend(t, s, b.cfg.DataDir)
	if got, err := b2.Read(ctx, "clusters/prod/other.yaml"); err != nil || got != "x: 1\n" {
		t.Fatalf("reused clone read: %q %v", got, err)
	}
}

func TestErrors(t *testing.T) {
	s := newServer(t)
	b := newBackend(t, s, t.TempDir())
	ctx := context.Background()
	existing := "clusters/prod/app.yaml"
	msg := "m\n\nShepherd-Task: t\n"

	if _, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: existing, Content: "a: 1\n", Message: msg}); !errors.Is(err, gitops.ErrExists) {
		t.Errorf("create existing: %v", err)
	}
	if _, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: "clusters/none.yaml", Content: "a: 1\n", Message: msg}); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("update missing: %v", err)
	}
	if _, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpDelete, Path: "clusters/none.yaml", Message: msg}); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("delete missing: %v", err)
	}
	if _, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: existing, Content: "replicas: 1\n", Message: msg}); !errors.Is(err, gitops.ErrInvalid) {
		t.Errorf("unchanged update: %v", err)
	}
	if _, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: "clusters/prod/app.yaml/x.yaml", Content: "a: 1\n", Message: msg}); !errors.Is(err, gitops.ErrInvalid) {
		t.Errorf("file as directory: %v", err)
	}
	if _, err := b.Read(ctx, "clusters/prod"); !errors.Is(err, gitops.ErrInvalid) {
		t.Errorf("read a directory: %v", err)
	}
	// Nothing of the refused attempts reached the remote.
	dir := s.clone()
	if n := runGit(t, dir, "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("remote has %s commits, want 1", n)
	}
}

func TestSymlinkRefused(t *testing.T) {
	s := newServer(t)
	dir := s.clone()
	runGit(t, dir, "config", "core.symlinks", "true")
	if err := os.Symlink("../etc", filepath.Join(dir, "clusters", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("prod/app.yaml", filepath.Join(dir, "clusters", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "symlinks")
	runGit(t, dir, "push", "-q", "origin", testBranch)

	b := newBackend(t, s, t.TempDir())
	ctx := context.Background()
	for _, c := range []gitops.Change{
		{Operation: gitops.OpCreate, Path: "clusters/escape/passwd", Content: "x", Message: "m"},
		{Operation: gitops.OpUpdate, Path: "clusters/link.yaml", Content: "x: 2\n", Message: "m"},
		{Operation: gitops.OpDelete, Path: "clusters/link.yaml", Message: "m"},
	} {
		if _, err := b.Apply(ctx, c); !errors.Is(err, gitops.ErrInvalid) || !strings.Contains(err.Error(), "symlink") {
			t.Errorf("%s %s: %v", c.Operation, c.Path, err)
		}
	}
	if _, err := b.Read(ctx, "clusters/link.yaml"); !errors.Is(err, gitops.ErrInvalid) {
		t.Errorf("read through symlink: %v", err)
	}
}

func TestPushRace(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	msg := "m\n\nShepherd-Task: t\n"

	t.Run("other file: re-applied once", func(t *testing.T) {
		b := newBackend(t, s, t.TempDir())
		fired := 0
		b.beforePush = func() {
			if fired == 0 {
				s.pushOther("clusters/prod/other.yaml", "other: 1\n")
			}
			fired++
		}
		c, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: "clusters/prod/mine.yaml", Content: "mine: 1\n", Message: msg})
		if err != nil {
			t.Fatalf("apply after race: %v", err)
		}
		if fired != 2 {
			t.Errorf("pushed %d times, want 2", fired)
		}
		dir := s.clone()
		if runGit(t, dir, "rev-parse", "HEAD") != c.ID {
			t.Error("returned commit is not the remote head")
		}
		a, _ := readIn(t, dir, "clusters/prod/other.yaml")
		m, _ := readIn(t, dir, "clusters/prod/mine.yaml")
		if a != "other: 1\n" || m != "mine: 1\n" {
			t.Errorf("after race: other=%q mine=%q", a, m)
		}
	})

	t.Run("same file: conflict", func(t *testing.T) {
		b := newBackend(t, s, t.TempDir())
		fired := false
		b.beforePush = func() {
			if !fired {
				s.pushOther("clusters/prod/app.yaml", "replicas: 7\n")
			}
			fired = true
		}
		_, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: "clusters/prod/app.yaml", Content: "replicas: 5\n", Message: msg})
		if !errors.Is(err, gitops.ErrConflict) {
			t.Fatalf("same-file race: %v", err)
		}
		if got, _ := readIn(t, s.clone(), "clusters/prod/app.yaml"); got != "replicas: 7\n" {
			t.Errorf("the other writer's change was lost: %q", got)
		}
		// The clone is clean again: the next write works.
		b.beforePush = nil
		if _, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: "clusters/prod/app.yaml", Content: "replicas: 5\n", Message: msg}); err != nil {
			t.Fatalf("write after conflict: %v", err)
		}
	})

	t.Run("moving branch: fails clearly", func(t *testing.T) {
		b := newBackend(t, s, t.TempDir())
		n := 0
		b.beforePush = func() {
			n++
			s.pushOther(fmt.Sprintf("clusters/busy/%d.yaml", n), "n: 1\n")
		}
		_, err := b.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: "clusters/prod/late.yaml", Content: "a: 1\n", Message: msg})
		if !errors.Is(err, gitops.ErrConflict) || !strings.Contains(err.Error(), "twice") {
			t.Fatalf("moving branch: %v", err)
		}
		if _, ok := readIn(t, s.clone(), "clusters/prod/late.yaml"); ok {
			t.Error("file landed despite the error")
		}
	})
}

func TestAuth(t *testing.T) {
	s := newServer(t)
	wrong := "wrong-password-abcdef"
	b, err := New(Config{URL: s.url(), Branch: testBranch, DataDir: t.TempDir(), Auth: Auth{Username: testUser, Password: wrong}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Read(context.Background(), "clusters/prod/app.yaml")
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error leaks the password: %v", err)
	}
	if _, err := New(Config{URL: "ssh://git@127.0.0.1:1/x", Branch: "main", DataDir: t.TempDir(), Auth: Auth{SSHKeyFile: "/nonexistent"}}); err == nil {
		t.Error("SSH key without known_hosts accepted")
	}
	if _, err := New(Config{URL: s.url(), DataDir: t.TempDir()}); err == nil {
		t.Error("missing branch accepted")
	}
}

func TestCorruptCloneIsReplaced(t *testing.T) {
	s := newServer(t)
	data := t.TempDir()
	b := newBackend(t, s, data)
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Read(context.Background(), "clusters/prod/app.yaml"); err != nil || got != "replicas: 1\n" {
		t.Fatalf("read with corrupt data dir: %q %v", got, err)
	}
}

func TestSSHRemoteChecksHostKey(t *testing.T) {
	s := newServer(t)
	keyDir := t.TempDir()
	s.srv.KeyDir(keyDir)
	dir := t.TempDir()
	clientKey := filepath.Join(dir, "id_ed25519")
	clientPub := sshtest.WriteKey(t, clientKey)
	s.srv.PublicKeyLookupFunc(func(content string) (*gitkit.PublicKey, error) {
		if content != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(clientPub))) {
			return nil, errors.New("unknown key")
		}
		return &gitkit.PublicKey{Id: "shepherd"}, nil
	})
	if err := s.srv.ListenSSH(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.srv.StartSSH() }()
	t.Cleanup(func() { _ = s.srv.StopSSH() })

	hostPubBytes, err := os.ReadFile(filepath.Join(keyDir, "gitkit.rsa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hostPub, _, _, _, err := ssh.ParseAuthorizedKey(hostPubBytes)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.srv.SSHAddress())
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(knownhosts.Line([]string{knownhosts.Normalize(u.Host)}, hostPub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := s.srv.SSHAddress() + "/" + repoPath
	b, err := New(Config{URL: remote, Branch: testBranch, DataDir: t.TempDir(),
		Auth: Auth{SSHKeyFile: clientKey, KnownHostsFile: knownHosts}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Apply(context.Background(), gitops.Change{Operation: gitops.OpCreate, Path: "clusters/ssh.yaml", Content: "via: ssh\n", Message: "over ssh\n\nShepherd-Task: t\n"})
	if err != nil {
		t.Fatalf("apply over SSH: %v", err)
	}
	clone := s.clone()
	if got, _ := readIn(t, clone, "clusters/ssh.yaml"); got != "via: ssh\n" || runGit(t, clone, "rev-parse", "HEAD") != c.ID {
		t.Fatalf("fresh clone after SSH push sees %q", got)
	}

	// A known_hosts that names another key for this host is refused.
	other := filepath.Join(dir, "other_known_hosts")
	if err := os.WriteFile(other, []byte(knownhosts.Line([]string{knownhosts.Normalize(u.Host)}, clientPub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b2, err := New(Config{URL: remote, Branch: testBranch, DataDir: t.TempDir(),
		Auth: Auth{SSHKeyFile: clientKey, KnownHostsFile: other}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Read(context.Background(), "clusters/ssh.yaml"); err == nil {
		t.Fatal("a mismatched host key was accepted")
	}
}
