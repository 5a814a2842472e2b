// Package gitlabtest is a stand-in GitLab for tests: it follows GitLab's
// documented repository Files API, the repository tree and the commits list,
// including their error answers, backed by a real Git repository.
package gitlabtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server follows GitLab's documented repository Files API, repository tree
// and commits list, backed by a real Git repository so that every write is a real commit
// a fresh clone can see. Only what the Backend uses is implemented.
type Server struct {
	t       testing.TB
	Dir     string // non-bare repository with the branch checked out
	Token   string
	Project string // numeric id
	Branch  string
	Srv     *httptest.Server
	mu      sync.Mutex
	// conflictStatus is the status for a stale last_commit_id: GitLab has
	// answered 400 with a message; 409 and 412 are accepted by the Backend too.
	ConflictStatus int
	// beforeWrite runs inside a write, after the request is read, to let a
	// test simulate a concurrent commit.
	BeforeWrite func()
	// TreeFailure, when set, is asked first for every tree request; a
	// non-zero status makes the stand-in answer it with {"message": msg},
	// to simulate GitLab or a proxy failing.
	TreeFailure func(r *http.Request) (status int, msg string)
	// TreeKeysetOnly makes the tree paginate like a GitLab that answers only
	// with keyset Link headers (no X-Next-Page), whatever was requested.
	TreeKeysetOnly bool
	Requests       []string
}

// New starts the stand-in on a loopback port; it stops at cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	s := &Server{t: t, Dir: t.TempDir(), Token: "glpat-standin-secret-0123456789", Project: "42", Branch: "main", ConflictStatus: http.StatusBadRequest}
	s.Git("init", "-q", "-b", s.Branch)
	s.Git("config", "user.name", "Seed")
	s.Git("config", "user.email", "seed@example.invalid")
	s.writeFile("clusters/prod/app.yaml", "replicas: 1\n")
	s.Git("add", "-A")
	s.Git("commit", "-q", "-m", "seed")
	s.Srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Srv.Close)
	return s
}

// Git runs git in the stand-in's repository and fails the test on error.
func (s *Server) Git(args ...string) string {
	s.t.Helper()
	out, err := s.gitErr(args...)
	if err != nil {
		s.t.Fatalf("git %v: %v", args, err)
	}
	return out
}

func (s *Server) gitErr(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (s *Server) writeFile(p, content string) {
	full := filepath.Join(s.Dir, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// CommitExternal makes a commit as if another user edited the file in the UI.
func (s *Server) CommitExternal(p, content string) {
	s.writeFile(p, content)
	s.Git("add", "-A")
	s.Git("commit", "-q", "-m", "external edit")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Requests = append(s.Requests, r.Method+" "+r.URL.EscapedPath())
	if r.Header.Get("PRIVATE-TOKEN") != s.Token {
		writeJSON(w, 401, map[string]string{"message": "401 Unauthorized"})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/projects/")
	if !ok {
		writeJSON(w, 404, map[string]string{"error": "404 Not Found"})
		return
	}
	pid, rest, _ := strings.Cut(rest, "/")
	if pid != s.Project && pid != url.PathEscape("group/repo") {
		writeJSON(w, 404, map[string]string{"message": "404 Project Not Found"})
		return
	}
	if rest == "repository/commits" && r.Method == http.MethodGet {
		s.listCommits(w, r)
		return
	}
	if rest == "repository/tree" && r.Method == http.MethodGet {
		s.listTree(w, r)
		return
	}
	escFile, ok := strings.CutPrefix(rest, "repository/files/")
	if !ok {
		writeJSON(w, 404, map[string]string{"error": "404 Not Found"})
		return
	}
	raw := false
	if f, isRaw := strings.CutSuffix(escFile, "/raw"); isRaw {
		escFile, raw = f, true
	}
	file, err := url.PathUnescape(escFile)
	if err != nil || file == "" || strings.Contains(file, "..") {
		writeJSON(w, 400, map[string]string{"error": "file_path should be a valid file path"})
		return
	}
	params := r.URL.Query()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, 400, map[string]string{"error": "body is not valid JSON"})
			return
		}
		for k, v := range body {
			params.Set(k, fmt.Sprint(v))
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.getFile(w, r, file, params, raw)
	case http.MethodPost, http.MethodPut, http.MethodDelete:
		s.write(w, r.Method, file, params)
	default:
		writeJSON(w, 405, map[string]string{"error": "405 Method Not Allowed"})
	}
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, file string, params url.Values, raw bool) {
	ref := params.Get("ref")
	if ref == "" {
		writeJSON(w, 400, map[string]string{"error": "ref is missing"})
		return
	}
	if _, err := s.gitErr("show", ref+":"+file); err != nil {
		writeJSON(w, 404, map[string]string{"message": "404 File Not Found"})
		return
	}
	content := s.gitRaw("show", ref+":"+file)
	if raw {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(content))
		return
	}
	head := s.Git("rev-parse", ref)
	last := s.Git("log", "-1", "--format=%H", ref, "--", file)
	blob := s.Git("rev-parse", ref+":"+file)
	h := w.Header()
	h.Set("X-Gitlab-Blob-Id", blob)
	h.Set("X-Gitlab-Commit-Id", head)
	h.Set("X-Gitlab-Last-Commit-Id", last)
	h.Set("X-Gitlab-File-Path", file)
	h.Set("X-Gitlab-File-Name", filepath.Base(file))
	h.Set("X-Gitlab-Ref", ref)
	h.Set("X-Gitlab-Encoding", "base64")
	h.Set("X-Gitlab-Size", fmt.Sprint(len(content)))
	if r.Method == http.MethodHead {
		w.WriteHeader(200)
		return
	}
	writeJSON(w, 200, map[string]any{
		"file_name": filepath.Base(file), "file_path": file, "size": len(content),
		"encoding": "base64", "content": base64.StdEncoding.EncodeToString([]byte(content)),
		"ref": ref, "blob_id": blob, "commit_id": head, "last_commit_id": last,
	})
}

// gitRaw returns output without trimming, for file contents.
func (s *Server) gitRaw(args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = s.Dir
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

func (s *Server) write(w http.ResponseWriter, method, file string, p url.Values) {
	for _, req := range []string{"branch", "commit_message"} {
		if p.Get(req) == "" {
			writeJSON(w, 400, map[string]string{"error": req + " is missing"})
			return
		}
	}
	if method != http.MethodDelete && !p.Has("content") {
		writeJSON(w, 400, map[string]string{"error": "content is missing"})
		return
	}
	if p.Get("branch") != s.Branch {
		writeJSON(w, 400, map[string]string{"message": "You can only create or edit files when you are on a branch"})
		return
	}
	if s.BeforeWrite != nil {
		s.BeforeWrite()
	}
	_, statErr := s.gitErr("cat-file", "-e", s.Branch+":"+file)
	exists := statErr == nil
	switch {
	case method == http.MethodPost && exists:
		writeJSON(w, 400, map[string]string{"message": "A file with this name already exists"})
		return
	case method != http.MethodPost && !exists:
		writeJSON(w, 400, map[string]string{"message": "A file with this name doesn't exist"})
		return
	}
	if lc := p.Get("last_commit_id"); lc != "" && method != http.MethodPost {
		if cur := s.Git("log", "-1", "--format=%H", s.Branch, "--", file); cur != lc {
			writeJSON(w, s.ConflictStatus, map[string]string{"message": "You are attempting to update a file that has changed since you started editing it."})
			return
		}
	}
	if method == http.MethodDelete {
		s.Git("rm", "-q", file)
	} else {
		s.writeFile(file, p.Get("content"))
		s.Git("add", file)
	}
	args := []string{"commit", "-q", "-m", p.Get("commit_message")}
	if p.Get("author_name") != "" {
		args = append(args, "--author", p.Get("author_name")+" <"+p.Get("author_email")+">")
	}
	s.Git(args...)
	switch method {
	case http.MethodPost:
		writeJSON(w, 201, map[string]string{"file_path": file, "branch": s.Branch})
	case http.MethodPut:
		writeJSON(w, 200, map[string]string{"file_path": file, "branch": s.Branch})
	default:
		w.WriteHeader(204)
	}
}

func (s *Server) listCommits(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := q.Get("ref_name")
	if ref == "" {
		ref = s.Branch
	}
	n := q.Get("per_page")
	if n == "" {
		n = "20"
	}
	args := []string{"log", "-n", n, "--format=%H%x00%s", ref}
	if p := q.Get("path"); p != "" {
		args = append(args, "--", p)
	}
	out, err := s.gitErr(args...)
	if err != nil {
		writeJSON(w, 404, map[string]string{"message": "404 Reference Not Found"})
		return
	}
	list := []map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		id, title, _ := strings.Cut(line, "\x00")
		list = append(list, map[string]string{
			"id": id, "short_id": id[:8], "title": title,
			"web_url": s.Srv.URL + "/group/repo/-/commit/" + id,
		})
	}
	writeJSON(w, 200, list)
}

// treeEntry is one entry of GET /projects/:id/repository/tree.
type treeEntry struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Path string `json:"path"`
	Mode string `json:"mode"`
}

// listTree answers GET /projects/:id/repository/tree as GitLab documents it:
// path (default the root), ref (default the default branch), recursive, and
// offset pagination (page, per_page; X-Page, X-Per-Page, X-Next-Page,
// X-Prev-Page, X-Total, X-Total-Pages and a Link header) or, with
// pagination=keyset, keyset pagination (page_token; a Link rel="next").
// Entries come from git ls-tree, trees first, then blobs, then submodules,
// as GitLab sorts them; a missing ref or a path that is not a directory is
// 404 {"message":"404 Tree Not Found"}.
func (s *Server) listTree(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if s.TreeFailure != nil {
		if code, msg := s.TreeFailure(r); code != 0 {
			writeJSON(w, code, map[string]string{"message": msg})
			return
		}
	}
	notFound := func() { writeJSON(w, 404, map[string]string{"message": "404 Tree Not Found"}) }
	ref := q.Get("ref")
	if ref == "" {
		ref = s.Branch
	}
	dir := strings.Trim(q.Get("path"), "/")
	if strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, ":") {
		notFound()
		return
	}
	for _, part := range strings.Split(dir, "/") {
		if dir != "" && (part == "" || part == "." || part == "..") {
			notFound()
			return
		}
	}
	commit, err := s.gitErr("rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		notFound()
		return
	}
	treeish := commit + "^{tree}"
	if dir != "" {
		treeish = commit + ":" + dir
	}
	if kind, err := s.gitErr("cat-file", "-t", treeish); err != nil || kind != "tree" {
		notFound()
		return
	}
	args := []string{"ls-tree", "-z"}
	if q.Get("recursive") == "true" {
		args = append(args, "-r", "-t")
	}
	out := s.gitRaw(append(args, treeish)...)
	var trees, blobs, commits []treeEntry
	for _, rec := range strings.Split(out, "\x00") {
		meta, name, ok := strings.Cut(rec, "\t")
		if !ok {
			continue
		}
		f := strings.Fields(meta) // mode type object
		if len(f) != 3 {
			continue
		}
		full := name
		if dir != "" {
			full = dir + "/" + name
		}
		e := treeEntry{ID: f[2], Name: name[strings.LastIndex(name, "/")+1:], Type: f[1], Path: full, Mode: f[0]}
		switch e.Type {
		case "tree":
			trees = append(trees, e)
		case "commit":
			commits = append(commits, e)
		default:
			blobs = append(blobs, e)
		}
	}
	all := append(append(append([]treeEntry{}, trees...), blobs...), commits...)

	perPage, _ := strconv.Atoi(q.Get("per_page"))
	if perPage <= 0 {
		perPage = 20
	}
	perPage = min(perPage, 100)
	link := func(set map[string]string) string {
		v := r.URL.Query()
		for k, val := range set {
			v.Set(k, val)
		}
		return s.Srv.URL + r.URL.Path + "?" + v.Encode()
	}
	h := w.Header()
	if q.Get("pagination") == "keyset" || s.TreeKeysetOnly {
		start := 0
		if tok := q.Get("page_token"); tok != "" {
			var cur struct {
				FileName string `json:"file_name"`
			}
			raw, err := base64.URLEncoding.DecodeString(tok)
			if err != nil || json.Unmarshal(raw, &cur) != nil {
				writeJSON(w, 400, map[string]string{"message": "400 Bad request - Invalid page token"})
				return
			}
			start = -1
			for i, e := range all {
				if e.Path == cur.FileName {
					start = i + 1
					break
				}
			}
			if start < 0 {
				writeJSON(w, 400, map[string]string{"message": "400 Bad request - Invalid page token"})
				return
			}
		}
		end := min(start+perPage, len(all))
		page := all[start:end]
		if end < len(all) {
			tok, _ := json.Marshal(map[string]string{"file_name": page[len(page)-1].Path})
			h.Set("Link", "<"+link(map[string]string{"pagination": "keyset", "per_page": strconv.Itoa(perPage),
				"page_token": base64.URLEncoding.EncodeToString(tok)})+">; rel=\"next\"")
		}
		writeJSON(w, 200, page)
		return
	}
	pageNo, _ := strconv.Atoi(q.Get("page"))
	if pageNo <= 0 {
		pageNo = 1
	}
	pages := max(1, (len(all)+perPage-1)/perPage)
	start := min((pageNo-1)*perPage, len(all))
	end := min(start+perPage, len(all))
	h.Set("X-Page", strconv.Itoa(pageNo))
	h.Set("X-Per-Page", strconv.Itoa(perPage))
	h.Set("X-Total", strconv.Itoa(len(all)))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	h.Set("X-Next-Page", "")
	h.Set("X-Prev-Page", "")
	links := []string{}
	if pageNo > 1 {
		h.Set("X-Prev-Page", strconv.Itoa(pageNo-1))
		links = append(links, "<"+link(map[string]string{"page": strconv.Itoa(pageNo - 1)})+">; rel=\"prev\"")
	}
	if pageNo < pages {
		h.Set("X-Next-Page", strconv.Itoa(pageNo+1))
		links = append(links, "<"+link(map[string]string{"page": strconv.Itoa(pageNo + 1)})+">; rel=\"next\"")
	}
	links = append(links, "<"+link(map[string]string{"page": "1"})+">; rel=\"first\"",
		"<"+link(map[string]string{"page": strconv.Itoa(pages)})+">; rel=\"last\"")
	h.Set("Link", strings.Join(links, ", "))
	writeJSON(w, 200, all[start:end])
}

// URL is the base URL to give the GitLab client.
func (s *Server) URL() string { return s.Srv.URL }
