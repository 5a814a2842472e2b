package gitlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/gitops"
	"github.com/cluster-shepherd/shepherd/internal/gitops/gitlab/gitlabtest"
	"github.com/cluster-shepherd/shepherd/internal/gitops/gitrepo"
)

// symlinkRepo commits, inside and next to the allowed directories:
//
//	secrets.yaml                          outside the allowlist
//	private/app.yaml                      outside the allowlist
//	clusters/prod/link.yaml -> ../../secrets.yaml   a symlinked file
//	clusters/home -> ../private           a symlinked directory
//	apps -> private                       a symlinked allowed directory
//	clusters/sub                          a submodule (gitlink)
//	clusters/prod/run.sh                  an executable file
func symlinkRepo(t *testing.T, s *gitlabtest.Server) {
	t.Helper()
	write := func(p, content string, mode os.FileMode) {
		full := filepath.Join(s.Dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("secrets.yaml", "password: hunter2\n", 0o644)
	write("private/app.yaml", "token: private-0\n", 0o644)
	write("clusters/prod/run.sh", "#!/bin/sh\n", 0o755)
	for link, target := range map[string]string{
		"clusters/prod/link.yaml": "../../secrets.yaml",
		"clusters/home":           "../private",
		"apps":                    "private",
	} {
		if err := os.Symlink(target, filepath.Join(s.Dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	s.Git("config", "core.symlinks", "true")
	s.Git("add", "-A")
	head := s.Git("rev-parse", "HEAD")
	s.Git("update-index", "--add", "--cacheinfo", "160000,"+head+",clusters/sub")
	s.Git("commit", "-q", "-m", "symlinks")
	for _, p := range []string{"clusters/prod/link.yaml", "clusters/home", "apps"} {
		if mode := strings.Fields(s.Git("ls-tree", "HEAD", p))[0]; mode != "120000" {
			t.Fatalf("%s committed with mode %s, not as a symlink", p, mode)
		}
	}
}

func guardForSymlinks() gitops.Guard {
	return gitops.Guard{AllowedDirs: []string{"clusters", "apps"}, MessagePrefix: "shepherd: "}
}

// writes lists the Files API writes the stand-in received.
func writes(s *gitlabtest.Server) []string {
	var out []string
	for _, r := range s.Requests {
		if !strings.HasPrefix(r, "GET ") && !strings.HasPrefix(r, "HEAD ") {
			out = append(out, r)
		}
	}
	return out
}

func treeCalls(reqs []string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasSuffix(r, "/repository/tree") {
			n++
		}
	}
	return n
}

func TestSymlinksRefused(t *testing.T) {
	s := gitlabtest.New(t)
	symlinkRepo(t, s)
	svc := newService(t, s)
	svc.Guard = guardForSymlinks()
	// The git backend on the same repository is the reference for the
	// refusals and their wording.
	gb, err := gitrepo.New(gitrepo.Config{URL: s.Dir, Branch: s.Branch, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ref := &gitops.Service{Guard: svc.Guard, Backend: gb}
	ctx := context.Background()
	head := s.Git("rev-parse", "HEAD")

	for _, tc := range []struct {
		op   gitops.Operation
		path string
		want string
	}{
		{gitops.OpRead, "clusters/prod/link.yaml", "clusters/prod/link.yaml is a symlink"},
		{gitops.OpUpdate, "clusters/prod/link.yaml", "clusters/prod/link.yaml is a symlink"},
		{gitops.OpDelete, "clusters/prod/link.yaml", "clusters/prod/link.yaml is a symlink"},
		{gitops.OpCreate, "clusters/prod/link.yaml", "clusters/prod/link.yaml is a symlink"},
		{gitops.OpRead, "clusters/home/app.yaml", "clusters/home is a symlink"},
		{gitops.OpUpdate, "clusters/home/app.yaml", "clusters/home is a symlink"},
		{gitops.OpDelete, "clusters/home/app.yaml", "clusters/home is a symlink"},
		{gitops.OpCreate, "clusters/home/new.yaml", "clusters/home is a symlink"},
		{gitops.OpCreate, "clusters/home/deeper/new.yaml", "clusters/home is a symlink"},
		{gitops.OpRead, "apps/app.yaml", "apps is a symlink"},
		{gitops.OpUpdate, "apps/app.yaml", "apps is a symlink"},
		{gitops.OpCreate, "apps/new.yaml", "apps is a symlink"},
		{gitops.OpCreate, "clusters/sub/new.yaml", "clusters/sub is a submodule"},
		{gitops.OpCreate, "clusters/prod/app.yaml/new.yaml", "clusters/prod/app.yaml is a file, not a directory"},
		{gitops.OpRead, "clusters/prod", "clusters/prod is a directory"},
	} {
		name := fmt.Sprintf("%s %s", tc.op, tc.path)
		c := gitops.Change{Operation: tc.op, Path: tc.path, Message: "try " + tc.path, TaskID: "task-1"}
		if tc.op == gitops.OpCreate || tc.op == gitops.OpUpdate {
			c.Content = "replicas: 9\n"
		}
		run := func(svc *gitops.Service) (string, error) {
			if tc.op == gitops.OpRead {
				return svc.Read(ctx, tc.path)
			}
			_, err := svc.Apply(ctx, c)
			return "", err
		}
		got, err := run(svc)
		if !errors.Is(err, gitops.ErrInvalid) || !strings.HasSuffix(err.Error(), "invalid change: "+tc.want) {
			t.Errorf("%s: got %q, %v; want a refusal ending in %q", name, got, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "private-0") {
			t.Errorf("%s: error shows the link's target content: %v", name, err)
		}
		_, refErr := run(ref)
		if refErr == nil || refErr.Error() != err.Error() {
			t.Errorf("%s: gitlab says %q, the git backend %q", name, err, refErr)
		}
	}
	if h := s.Git("rev-parse", "HEAD"); h != head {
		t.Errorf("HEAD moved from %s to %s: %s", head, h, s.Git("log", "-1", "--stat"))
	}
	if w := writes(s); len(w) != 0 {
		t.Errorf("refused changes reached the Files API: %v", w)
	}
}

// TestFilesNextToSymlinksStillWork checks normal files in a directory that
// also holds a symlink, and counts the API calls each operation makes.
func TestFilesNextToSymlinksStillWork(t *testing.T) {
	s := gitlabtest.New(t)
	symlinkRepo(t, s)
	svc := newService(t, s)
	svc.Guard = guardForSymlinks()
	ctx := context.Background()

	// clusters/prod/app.yaml: the root, clusters and clusters/prod are listed.
	calls := func(f func() error) ([]string, error) {
		before := len(s.Requests)
		err := f()
		return append([]string(nil), s.Requests[before:]...), err
	}
	reqs, err := calls(func() error {
		got, err := svc.Read(ctx, "clusters/prod/app.yaml")
		if err == nil && got != "replicas: 1\n" {
			err = fmt.Errorf("read %q", got)
		}
		return err
	})
	if err != nil || len(reqs) != 4 || treeCalls(reqs) != 3 {
		t.Fatalf("read: %v, requests %v", err, reqs)
	}
	if got, err := svc.Read(ctx, "clusters/prod/run.sh"); err != nil || got != "#!/bin/sh\n" {
		t.Fatalf("read executable: %q %v", got, err)
	}

	for _, tc := range []struct {
		c     gitops.Change
		calls int // tree listings plus Files API calls plus the commit lookup
		tree  int
	}{
		// create stops at the first missing directory: root, clusters, (new is missing).
		{gitops.Change{Operation: gitops.OpCreate, Path: "clusters/new/web.yaml", Content: "a: 1\n"}, 4, 2},
		{gitops.Change{Operation: gitops.OpCreate, Path: "clusters/prod/web.yaml", Content: "a: 1\n"}, 5, 3},
		{gitops.Change{Operation: gitops.OpUpdate, Path: "clusters/prod/app.yaml", Content: "replicas: 2\n"}, 6, 3},
		{gitops.Change{Operation: gitops.OpDelete, Path: "clusters/prod/web.yaml"}, 6, 3},
	} {
		tc.c.Message, tc.c.TaskID = "ok "+tc.c.Path, "task-2"
		var commit gitops.Commit
		reqs, err := calls(func() (err error) {
			commit, err = svc.Apply(ctx, tc.c)
			return err
		})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.c.Operation, tc.c.Path, err)
		}
		if commit.ID != s.Git("rev-parse", "HEAD") {
			t.Errorf("%s %s: commit %q is not HEAD", tc.c.Operation, tc.c.Path, commit.ID)
		}
		if len(reqs) != tc.calls || treeCalls(reqs) != tc.tree {
			t.Errorf("%s %s: %d requests (%d tree), want %d (%d): %v", tc.c.Operation, tc.c.Path, len(reqs), treeCalls(reqs), tc.calls, tc.tree, reqs)
		}
	}
	if got, _ := freshClone(t, s, "clusters/prod/app.yaml"); got != "replicas: 2\n" {
		t.Errorf("update not in a fresh clone: %q", got)
	}
	if mode := strings.Fields(s.Git("ls-tree", "HEAD", "clusters/prod/link.yaml"))[0]; mode != "120000" {
		t.Errorf("the symlink was touched: mode %s", mode)
	}
}

// TestSymlinkFoundOnLaterPage puts the symlink on the third page of a large
// directory, with offset and with keyset pagination.
func TestSymlinkFoundOnLaterPage(t *testing.T) {
	for _, keyset := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyset=%v", keyset), func(t *testing.T) {
			s := gitlabtest.New(t)
			s.TreeKeysetOnly = keyset
			dir := filepath.Join(s.Dir, "clusters", "big")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 240 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.yaml", i)), []byte("a: 1\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("../../secrets.yaml", filepath.Join(dir, "zz-link.yaml")); err != nil {
				t.Fatal(err)
			}
			s.Git("add", "-A")
			s.Git("commit", "-q", "-m", "big")
			head := s.Git("rev-parse", "HEAD")
			svc := newService(t, s)
			ctx := context.Background()

			before := len(s.Requests)
			_, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: "clusters/big/zz-link.yaml", Content: "a: 2\n", Message: "m", TaskID: "t"})
			if !errors.Is(err, gitops.ErrInvalid) || !strings.Contains(err.Error(), "clusters/big/zz-link.yaml is a symlink") {
				t.Fatalf("update through symlink on page 3: %v", err)
			}
			// root, clusters, and three pages of clusters/big.
			if n := treeCalls(s.Requests[before:]); n != 5 {
				t.Errorf("%d tree requests, want 5: %v", n, s.Requests[before:])
			}
			if got, err := svc.Read(ctx, "clusters/big/f239.yaml"); err != nil || got != "a: 1\n" {
				t.Errorf("read the last regular file: %q %v", got, err)
			}
			if _, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: "clusters/big/zz-new.yaml", Content: "a: 3\n", Message: "m", TaskID: "t"}); err != nil {
				t.Errorf("create after paging the whole directory: %v", err)
			}
			if h := s.Git("rev-parse", "HEAD~1"); h != head {
				t.Errorf("expected exactly one commit (the create) on top of %s", head)
			}
		})
	}
}

// TestTreeFailureFailsClosed: when the tree cannot be listed the path is
// unchecked, so nothing is written, and the error says why without the token.
func TestTreeFailureFailsClosed(t *testing.T) {
	s := gitlabtest.New(t)
	svc := newService(t, s)
	ctx := context.Background()
	head := s.Git("rev-parse", "HEAD")

	// Only the deepest level fails, so every level must really be listed.
	s.TreeFailure = func(r *http.Request) (int, string) {
		if r.URL.Query().Get("path") == "clusters/prod" {
			return http.StatusInternalServerError, "500 Internal Server Error"
		}
		return 0, ""
	}
	for _, c := range []gitops.Change{
		{Operation: gitops.OpUpdate, Path: "clusters/prod/app.yaml", Content: "replicas: 7\n"},
		{Operation: gitops.OpDelete, Path: "clusters/prod/app.yaml"},
		{Operation: gitops.OpCreate, Path: "clusters/prod/new.yaml", Content: "a: 1\n"},
	} {
		c.Message, c.TaskID = "m", "t"
		_, err := svc.Apply(ctx, c)
		want := "gitlab: refusing: could not list clusters/prod to check it for symlinks: gitlab answered 500: "
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "500 Internal Server Error") {
			t.Errorf("%s: %v, want an error containing %q", c.Operation, err, want)
		}
	}
	if _, err := svc.Read(ctx, "clusters/prod/app.yaml"); err == nil || !strings.Contains(err.Error(), "gitlab answered 500") {
		t.Errorf("read: %v", err)
	}

	// A failure that echoes the request's token must not leak it.
	s.TreeFailure = func(r *http.Request) (int, string) {
		return http.StatusBadGateway, "upstream refused PRIVATE-TOKEN " + r.Header.Get("PRIVATE-TOKEN")
	}
	_, err := svc.Apply(ctx, gitops.Change{Operation: gitops.OpUpdate, Path: "clusters/prod/app.yaml", Content: "replicas: 8\n", Message: "m", TaskID: "t"})
	if err == nil || strings.Contains(err.Error(), s.Token) || !strings.Contains(err.Error(), "502") {
		t.Errorf("echoed token: %v", err)
	}
	s.TreeFailure = func(*http.Request) (int, string) { return http.StatusForbidden, "403 Forbidden" }
	_, err = svc.Apply(ctx, gitops.Change{Operation: gitops.OpCreate, Path: "clusters/prod/x.yaml", Content: "a: 1\n", Message: "m", TaskID: "t"})
	if err == nil || !strings.Contains(err.Error(), "refused the token (403)") {
		t.Errorf("forbidden tree: %v", err)
	}

	if h := s.Git("rev-parse", "HEAD"); h != head {
		t.Errorf("HEAD moved from %s to %s although the tree check failed", head, h)
	}
	if w := writes(s); len(w) != 0 {
		t.Errorf("unchecked changes reached the Files API: %v", w)
	}
}

// TestTreeAPI checks the stand-in's tree endpoint itself against GitLab's
// documented answers.
func TestTreeAPI(t *testing.T) {
	s := gitlabtest.New(t)
	symlinkRepo(t, s)
	get := func(token, query string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.URL()+"/api/v4/projects/"+s.Project+"/repository/tree?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("PRIVATE-TOKEN", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	if resp, body := get("wrong", "path=clusters"); resp.StatusCode != 401 || !strings.Contains(body, "401 Unauthorized") {
		t.Errorf("wrong token: %d %s", resp.StatusCode, body)
	}
	for _, q := range []string{"path=missing&ref=main", "path=clusters/prod/app.yaml", "path=clusters/home", "ref=nope"} {
		if resp, body := get(s.Token, q); resp.StatusCode != 404 || strings.TrimSpace(body) != `{"message":"404 Tree Not Found"}` {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	resp, body := get(s.Token, "path=clusters/prod&ref=main&recursive=false&per_page=2")
	if resp.StatusCode != 200 || resp.Header.Get("X-Total") != "3" || resp.Header.Get("X-Next-Page") != "2" ||
		resp.Header.Get("X-Page") != "1" || !strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
		t.Errorf("page 1: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if !strings.Contains(body, `"name":"link.yaml","type":"blob","path":"clusters/prod/link.yaml","mode":"120000"`) {
		t.Errorf("page 1: %s", body)
	}
	resp, body = get(s.Token, "path=clusters/prod&ref=main&per_page=2&page=2")
	if resp.Header.Get("X-Next-Page") != "" || resp.Header.Get("X-Prev-Page") != "1" ||
		!strings.Contains(body, `"name":"run.sh","type":"blob","path":"clusters/prod/run.sh","mode":"100755"`) {
		t.Errorf("page 2: %v %s", resp.Header, body)
	}
	if _, body := get(s.Token, "path=clusters"); !strings.Contains(body, `"name":"home","type":"blob","path":"clusters/home","mode":"120000"`) ||
		!strings.Contains(body, `"name":"sub","type":"commit","path":"clusters/sub","mode":"160000"`) ||
		!strings.Contains(body, `"name":"prod","type":"tree","path":"clusters/prod","mode":"040000"`) {
		t.Errorf("clusters: %s", body)
	}
}

// TestSymlinkAfterCheck: a symlink committed between our tree check and our
// write is caught by GitLab's last_commit_id check (the file's last commit
// changed) or by the file no longer existing (a directory above it became a
// link), because update and delete check the commit the metadata came from.
func TestSymlinkAfterCheck(t *testing.T) {
	for _, tc := range []struct {
		link, target string
		want         error
	}{
		{"clusters/prod/app.yaml", "../../secrets.yaml", gitops.ErrConflict},
		{"clusters/prod", "../private", gitops.ErrNotFound},
	} {
		t.Run(tc.link, func(t *testing.T) {
			s := gitlabtest.New(t)
			svc := newService(t, s)
			s.BeforeWrite = func() {
				s.BeforeWrite = nil
				full := filepath.Join(s.Dir, tc.link)
				if err := os.RemoveAll(full); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(tc.target, full); err != nil {
					t.Fatal(err)
				}
				s.Git("add", "-A")
				s.Git("commit", "-q", "-m", "sneak a symlink in")
			}
			_, err := svc.Apply(context.Background(), gitops.Change{Operation: gitops.OpUpdate, Path: "clusters/prod/app.yaml",
				Content: "replicas: 6\n", Message: "m", TaskID: "t"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("update raced by a symlink: %v, want %v", err, tc.want)
			}
			if msg := s.Git("log", "-1", "--format=%s"); msg != "sneak a symlink in" {
				t.Errorf("a commit followed the symlink: %q", msg)
			}
		})
	}
}
