package gitlab

import (
	"github.com/cluster-shepherd/shepherd/internal/gitops/gitlab/gitlabtest"

	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/gitops"
)

func newService(t *testing.T, s *gitlabtest.Server) *gitops.Service {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(s.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{BaseURL: s.Srv.URL, ProjectID: s.Project, Branch: s.Branch, TokenFile: tokenFile,
		AuthorName: "Shepherd", AuthorEmail: "shepherd@example.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	return &gitops.Service{Guard: gitops.Guard{MessagePrefix: "shepherd: "}, Backend: b}
}

// freshClone returns the content of p in a new clone of the stand-in's repository.
func freshClone(t *testing.T, s *gitlabtest.Server, p string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("git", "clone", "-q", "-b", s.Branch, s.Dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, p))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func TestCreateUpdateDelete(t *testing.T) {
	s := gitlabtest.New(t)
	svc := newService(t, s)
	ctx := context.Background()
	const p = "clusters/prod/web.yaml"

	c1, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: p, Content: "replicas: 2\n", Message: "add web", TaskID: "task-1"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if head := s.Git("rev-parse", "HEAD"); c1.ID != head {
		t.Fatalf("create returned %q, head is %q", c1.ID, head)
	}
	if !strings.HasSuffix(c1.URL, "/-/commit/"+c1.ID) {
		t.Errorf("commit URL %q", c1.URL)
	}
	if got, ok := freshClone(t, s, p); !ok || got != "replicas: 2\n" {
		t.Fatalf("fresh clone sees %q, %v", got, ok)
	}
	msg := s.Git("log", "-1", "--format=%B")
	if msg != "shepherd: add web\n\nShepherd-Task: task-1" {
		t.Errorf("commit message %q", msg)
	}
	if a := s.Git("log", "-1", "--format=%an <%ae>"); a != "Shepherd <shepherd@example.invalid>" {
		t.Errorf("author %q", a)
	}

	got, err := svc.Read(ctx, p)
	if err != nil || got != "replicas: 2\n" {
		t.Fatalf("read: %q %v", got, err)
	}

	c2, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: p, Content: "replicas: 3\n", Message: "scale web", TaskID: "task-2"})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if c2.ID == c1.ID || c2.ID != s.Git("rev-parse", "HEAD") {
		t.Fatalf("update commit %q", c2.ID)
	}
	if got, _ := freshClone(t, s, p); got != "replicas: 3\n" {
		t.Fatalf("fresh clone after update sees %q", got)
	}

	c3, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpDelete, Path: p, Message: "drop web", TaskID: "task-3"})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if c3.ID != s.Git("rev-parse", "HEAD") {
		t.Fatalf("delete commit %q", c3.ID)
	}
	if _, ok := freshClone(t, s, p); ok {
		t.Fatal("file still present after delete")
	}
	if _, err := svc.Read(ctx, p); !errors.Is(err, gitops.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
}

func TestErrorAnswers(t *testing.T) {
	s := gitlabtest.New(t)
	svc := newService(t, s)
	ctx := context.Background()
	existing := "clusters/prod/app.yaml"

	_, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: existing, Content: "a: 1\n", Message: "m", TaskID: "t"})
	if !errors.Is(err, gitops.ErrExists) {
		t.Errorf("create existing: %v", err)
	}
	for _, op := range []gitops.Operation{gitops.OpUpdate, gitops.OpDelete} {
		c := gitops.Change{Operation: op, Path: "clusters/prod/missing.yaml", Message: "m", TaskID: "t"}
		if op == gitops.OpUpdate {
			c.Content = "a: 1\n"
		}
		if _, err := svc.Apply(ctx, c); !errors.Is(err, gitops.ErrNotFound) {
			t.Errorf("%s missing: %v", op, err)
		}
	}
	if _, err := svc.Read(ctx, "clusters/none.yaml"); !errors.Is(err, gitops.ErrNotFound) {
		t.Errorf("read missing: %v", err)
	}

	// A concurrent edit between our metadata read and our write must be
	// refused, whichever status this GitLab version uses.
	for _, status := range []int{http.StatusBadRequest, http.StatusConflict, http.StatusPreconditionFailed} {
		s.ConflictStatus = status
		s.BeforeWrite = func() {
			s.CommitExternal(existing, fmt.Sprintf("replicas: %d\n", status))
		}
		_, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: existing, Content: "replicas: 5\n", Message: "m", TaskID: "t"})
		if !errors.Is(err, gitops.ErrConflict) {
			t.Errorf("status %d: stale update: %v", status, err)
		}
		if got, _ := freshClone(t, s, existing); got != fmt.Sprintf("replicas: %d\n", status) {
			t.Errorf("status %d: concurrent edit was overwritten: %q", status, got)
		}
		s.BeforeWrite = nil
	}
}

func TestTokenHandling(t *testing.T) {
	s := gitlabtest.New(t)
	wrong := "glpat-wrong-token-abcdefghijkl"
	b, err := New(Config{BaseURL: s.Srv.URL, ProjectID: s.Project, Branch: s.Branch, Token: wrong})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Read(context.Background(), "clusters/prod/app.yaml")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatal("error leaks the token")
	}

	t.Setenv("SHEPHERD_TEST_GITLAB_TOKEN", s.Token)
	b, err = New(Config{BaseURL: s.Srv.URL, ProjectID: "group/repo", Branch: s.Branch, TokenEnv: "SHEPHERD_TEST_GITLAB_TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Read(context.Background(), "clusters/prod/app.yaml"); err != nil || got != "replicas: 1\n" {
		t.Fatalf("read by project path with env token: %q %v", got, err)
	}

	for name, cfg := range map[string]Config{
		"no token":     {BaseURL: "http://127.0.0.1:1", ProjectID: "1", Branch: "main"},
		"empty env":    {BaseURL: "http://127.0.0.1:1", ProjectID: "1", Branch: "main", TokenEnv: "SHEPHERD_TEST_UNSET_VAR"},
		"missing file": {BaseURL: "http://127.0.0.1:1", ProjectID: "1", Branch: "main", TokenFile: "/nonexistent/token"},
		"no branch":    {BaseURL: "http://127.0.0.1:1", ProjectID: "1", Token: "x"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted the config", name)
		}
	}
}

func TestGuardRunsBeforeBackend(t *testing.T) {
	s := gitlabtest.New(t)
	svc := newService(t, s)
	before := len(s.Requests)
	for _, c := range []gitops.Change{
		{Operation: gitops.OpCreate, Path: "../etc/passwd", Content: "x", Message: "m", TaskID: "t"},
		{Operation: gitops.OpCreate, Path: "clusters/a.yaml", Content: "a: [", Message: "m", TaskID: "t"},
		{Operation: gitops.OpCreate, Path: "clusters/a.yaml", Content: "a: 1", Message: "m"},
	} {
		if _, err := svc.Apply(context.Background(), c); !errors.Is(err, gitops.ErrInvalid) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if len(s.Requests) != before {
		t.Errorf("refused changes reached GitLab: %v", s.Requests[before:])
	}
}
