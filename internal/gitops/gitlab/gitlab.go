// Package gitlab is the gitops Backend for GitLab, writing through the
// repository Files API with a token scoped to one project.
//
// The Files API cannot tell a symlink from a file: it reads a link's target
// as the file's content and would overwrite the link in place. So every
// operation first walks the path with the repository Tree API, which reports
// each entry's mode, and refuses symlinks and submodules on the way, as the
// git backend does.
package gitlab

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/cluster-shepherd/shepherd/internal/gitops"
)

// Config says which project and branch to write and how to authenticate.
type Config struct {
	// BaseURL is the GitLab root, e.g. https://gitlab.example.com (the API
	// path is added by the client).
	BaseURL string
	// ProjectID is the numeric id or the "group/project" path.
	ProjectID string
	Branch    string
	// Token is used when set; otherwise TokenFile is read, otherwise the
	// environment variable named by TokenEnv.
	Token     string
	TokenFile string
	TokenEnv  string
	// AuthorName and AuthorEmail override the token user as commit author.
	AuthorName  string
	AuthorEmail string
	// HTTPClient lets the caller set TLS roots and proxies; nil means a default client.
	HTTPClient *http.Client
	// Timeout bounds each API call; 0 means 30s.
	Timeout time.Duration
}

// Backend writes to one branch of one GitLab project.
type Backend struct {
	client  *gl.Client
	project string
	branch  string
	author  string
	email   string
	timeout time.Duration
	// token is kept only to scrub it from errors.
	token string
}

var _ gitops.Backend = (*Backend)(nil)

// New returns a Backend; it reads the token but does not contact GitLab.
func New(cfg Config) (*Backend, error) {
	if cfg.BaseURL == "" || cfg.ProjectID == "" || cfg.Branch == "" {
		return nil, errors.New("gitlab: base URL, project id and branch are required")
	}
	token, err := loadToken(cfg)
	if err != nil {
		return nil, err
	}
	opts := []gl.ClientOptionFunc{gl.WithBaseURL(cfg.BaseURL), gl.WithoutRetries()}
	if cfg.HTTPClient != nil {
		opts = append(opts, gl.WithHTTPClient(cfg.HTTPClient))
	}
	client, err := gl.NewClient(token, opts...)
	if err != nil {
		return nil, fmt.Errorf("gitlab: client: %w", err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &Backend{client: client, project: cfg.ProjectID, branch: cfg.Branch,
		author: cfg.AuthorName, email: cfg.AuthorEmail, timeout: timeout, token: token}, nil
}

// loadToken never puts the token's value in an error.
func loadToken(cfg Config) (string, error) {
	var token string
	switch {
	case cfg.Token != "":
		token = cfg.Token
	case cfg.TokenFile != "":
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return "", fmt.Errorf("gitlab: read token file: %w", err)
		}
		token = string(b)
	case cfg.TokenEnv != "":
		token = os.Getenv(cfg.TokenEnv)
		if token == "" {
			return "", fmt.Errorf("gitlab: environment variable %s is empty", cfg.TokenEnv)
		}
	default:
		return "", errors.New("gitlab: no token configured (token, token file or token env)")
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", errors.New("gitlab: token is empty or malformed")
	}
	return token, nil
}

// Read returns a file's content on the branch. The path is checked for
// symlinks at the very commit the content was read from.
func (b *Backend) Read(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	content, err := b.read(ctx, path)
	return content, b.redact(err)
}

func (b *Backend) read(ctx context.Context, path string) (string, error) {
	f, _, err := b.client.RepositoryFiles.GetFile(b.project, path,
		&gl.GetFileOptions{Ref: gl.Ptr(b.branch)}, gl.WithContext(ctx))
	if err != nil {
		return "", b.explainNotFound(ctx, path, mapError(err))
	}
	if err := b.checkPath(ctx, pinned(f.CommitID, b.branch), path); err != nil {
		return "", err
	}
	switch f.Encoding {
	case "base64":
		raw, err := base64.StdEncoding.DecodeString(f.Content)
		if err != nil {
			return "", fmt.Errorf("gitlab: file content is not valid base64: %w", err)
		}
		return string(raw), nil
	case "text":
		return f.Content, nil
	default:
		return "", fmt.Errorf("gitlab: file content has unknown encoding %q", f.Encoding)
	}
}

// explainNotFound turns "not found" into the symlink refusal when the path
// runs through a symlinked directory (GitLab does not follow links, so such
// a path is simply missing to it); other errors are returned unchanged.
func (b *Backend) explainNotFound(ctx context.Context, path string, err error) error {
	if !errors.Is(err, gitops.ErrNotFound) {
		return err
	}
	if cerr := b.checkPath(ctx, b.branch, path); cerr != nil {
		return cerr
	}
	return err
}

// pinned returns the commit id GitLab reported, or the branch if it reported none.
func pinned(commitID, branch string) string {
	if commitID != "" {
		return commitID
	}
	return branch
}

// Apply commits one change. Update and delete send the file's last commit id
// so GitLab refuses to overwrite a concurrent change instead of losing it.
func (b *Backend) Apply(ctx context.Context, c gitops.Change) (gitops.Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	commit, err := b.apply(ctx, c)
	return commit, b.redact(err)
}

func (b *Backend) apply(ctx context.Context, c gitops.Change) (gitops.Commit, error) {
	var author, email *string
	if b.author != "" {
		author = gl.Ptr(b.author)
	}
	if b.email != "" {
		email = gl.Ptr(b.email)
	}
	reqCtx := gl.WithContext(ctx)
	switch c.Operation {
	case gitops.OpCreate:
		// The Files API has no precondition on the tree, so this checks the
		// branch head; a symlink committed after the check makes the
		// directory a blob, in which GitLab cannot create a file.
		if err := b.checkPath(ctx, b.branch, c.Path); err != nil {
			return gitops.Commit{}, err
		}
		_, _, err := b.client.RepositoryFiles.CreateFile(b.project, c.Path, &gl.CreateFileOptions{
			Branch: gl.Ptr(b.branch), Content: gl.Ptr(c.Content), Encoding: gl.Ptr("text"),
			CommitMessage: gl.Ptr(c.Message), AuthorName: author, AuthorEmail: email,
		}, reqCtx)
		if err != nil {
			return gitops.Commit{}, mapError(err)
		}
	case gitops.OpUpdate, gitops.OpDelete:
		meta, _, err := b.client.RepositoryFiles.GetFileMetaData(b.project, c.Path,
			&gl.GetFileMetaDataOptions{Ref: gl.Ptr(b.branch)}, reqCtx)
		if err != nil {
			return gitops.Commit{}, b.explainNotFound(ctx, c.Path, mapError(err))
		}
		// Checking at the commit the metadata came from, then writing with
		// that commit's last_commit_id, leaves no gap: if the file became
		// a symlink since, its last commit changed and GitLab refuses; if a
		// directory above it did, the file no longer exists.
		if err := b.checkPath(ctx, pinned(meta.CommitID, b.branch), c.Path); err != nil {
			return gitops.Commit{}, err
		}
		var last *string
		if meta.LastCommitID != "" {
			last = gl.Ptr(meta.LastCommitID)
		}
		if c.Operation == gitops.OpUpdate {
			_, _, err = b.client.RepositoryFiles.UpdateFile(b.project, c.Path, &gl.UpdateFileOptions{
				Branch: gl.Ptr(b.branch), Content: gl.Ptr(c.Content), Encoding: gl.Ptr("text"),
				CommitMessage: gl.Ptr(c.Message), LastCommitID: last, AuthorName: author, AuthorEmail: email,
			}, reqCtx)
		} else {
			_, err = b.client.RepositoryFiles.DeleteFile(b.project, c.Path, &gl.DeleteFileOptions{
				Branch: gl.Ptr(b.branch), CommitMessage: gl.Ptr(c.Message), LastCommitID: last,
				AuthorName: author, AuthorEmail: email,
			}, reqCtx)
		}
		if err != nil {
			return gitops.Commit{}, mapError(err)
		}
	default:
		return gitops.Commit{}, fmt.Errorf("%w: operation %q", gitops.ErrInvalid, c.Operation)
	}
	return b.lastCommit(ctx, c.Path), nil
}

// Tree listings are read treePageSize entries at a time, and a directory of
// more than treeMaxPages pages is refused rather than left unchecked.
const (
	treePageSize = 100
	treeMaxPages = 100
)

// checkPath refuses a path that passes through or ends in a symlink or a
// submodule on ref, with the git backend's wording: writing through a link
// would escape the allowed directories. It lists one directory per level,
// from the repository root down to the file's directory, and stops at the
// first component that does not exist, since create may add directories.
// Any failure to list refuses the operation: nothing unchecked is written.
func (b *Backend) checkPath(ctx context.Context, ref, path string) error {
	parts := strings.Split(path, "/")
	dir := ""
	for i, name := range parts {
		entry, err := b.findEntry(ctx, ref, dir, name)
		if err != nil {
			return err
		}
		if entry == nil {
			return nil
		}
		prefix := strings.Join(parts[:i+1], "/")
		mode, err := strconv.ParseUint(entry.Mode, 8, 32)
		if err != nil {
			return fmt.Errorf("gitlab: refusing: the tree API reported mode %q for %s, so it cannot be checked for symlinks", entry.Mode, prefix)
		}
		if entry.Type == "commit" {
			mode = gitops.ModeSubmodule
		} else if (entry.Type == "tree") != (mode == gitops.ModeDir) {
			return fmt.Errorf("gitlab: refusing: the tree API reported %s as a %s with mode %s, so it cannot be checked for symlinks", prefix, entry.Type, entry.Mode)
		}
		if err := gitops.CheckTreeEntry(prefix, uint32(mode), i == len(parts)-1); err != nil {
			return err
		}
		dir = prefix
	}
	return nil
}

// findEntry returns the entry called name in directory dir ("" for the root)
// at ref, or nil if there is none. It follows offset pagination (X-Next-Page)
// and, for a GitLab that answers with keyset links only, the Link header.
func (b *Backend) findEntry(ctx context.Context, ref, dir, name string) (*gl.TreeNode, error) {
	opt := &gl.ListTreeOptions{
		ListOptions: gl.ListOptions{PerPage: treePageSize},
		Ref:         gl.Ptr(ref),
		Recursive:   gl.Ptr(false),
	}
	if dir != "" {
		opt.Path = gl.Ptr(dir)
	}
	var page gl.RequestOptionFunc
	current, prevLink := int64(1), ""
	for n := 1; ; n++ {
		reqOpts := []gl.RequestOptionFunc{gl.WithContext(ctx)}
		if page != nil {
			reqOpts = append(reqOpts, page)
		}
		nodes, resp, err := b.client.Repositories.ListTree(b.project, opt, reqOpts...)
		if err != nil {
			// The root of a repository without commits is "404 Tree Not
			// Found": nothing exists yet. Below the root we only list
			// directories the level above reported, so a 404 there means
			// the branch moved under us.
			if errors.Is(err, gl.ErrNotFound) {
				if dir == "" {
					return nil, nil
				}
				return nil, fmt.Errorf("%w: %s disappeared while it was being checked for symlinks; try again", gitops.ErrConflict, dir)
			}
			return nil, treeError(dir, err)
		}
		for _, node := range nodes {
			if node != nil && node.Name == name {
				return node, nil
			}
		}
		switch {
		case resp == nil:
			return nil, nil
		case resp.NextPage > 0:
			if resp.NextPage <= current {
				return nil, fmt.Errorf("gitlab: refusing: listing %s for symlinks went back to page %d", dirName(dir), resp.NextPage)
			}
			current = resp.NextPage
			page = gl.WithOffsetPaginationParameters(resp.NextPage)
		case resp.NextLink != "":
			if resp.NextLink == prevLink {
				return nil, fmt.Errorf("gitlab: refusing: listing %s for symlinks returned the same page twice", dirName(dir))
			}
			prevLink = resp.NextLink
			page = gl.WithKeysetPaginationParameters(resp.NextLink)
		default:
			return nil, nil
		}
		if n >= treeMaxPages {
			return nil, fmt.Errorf("gitlab: refusing: %s has more than %d entries, too many to check for symlinks", dirName(dir), treeMaxPages*treePageSize)
		}
	}
}

func dirName(dir string) string {
	if dir == "" {
		return "the repository root"
	}
	return dir
}

// treeError explains a failed tree listing: the operation is refused, since
// the path could not be checked for symlinks.
func treeError(dir string, err error) error {
	what := fmt.Sprintf("gitlab: refusing: could not list %s to check it for symlinks", dirName(dir))
	var er *gl.ErrorResponse
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", what, err)
	case !errors.As(err, &er) || er.Response == nil:
		return fmt.Errorf("%s: %v", what, err)
	case er.Response.StatusCode == http.StatusUnauthorized || er.Response.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: gitlab refused the token (%d): check its scope and expiry", what, er.Response.StatusCode)
	default:
		msg := er.Message
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return fmt.Errorf("%s: gitlab answered %d: %s", what, er.Response.StatusCode, msg)
	}
}

// redact replaces the token in an error's text, in case a proxy or GitLab
// echoes it back; the replacement keeps the gitops sentinel errors visible
// to errors.Is.
func (b *Backend) redact(err error) error {
	if err == nil || b.token == "" || !strings.Contains(err.Error(), b.token) {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), b.token, "***")
	for _, sentinel := range []error{gitops.ErrNotFound, gitops.ErrExists, gitops.ErrConflict, gitops.ErrInvalid} {
		if errors.Is(err, sentinel) {
			return &redacted{msg: msg, sentinel: sentinel}
		}
	}
	return errors.New(msg)
}

type redacted struct {
	msg      string
	sentinel error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.sentinel }

// lastCommit finds the commit just made, since the Files API answers a write
// with only the path and branch. The write already succeeded, so a failed
// lookup is logged rather than returned: an error would invite a retry that
// commits twice.
func (b *Backend) lastCommit(ctx context.Context, path string) gitops.Commit {
	commits, _, err := b.client.Commits.ListCommits(b.project, &gl.ListCommitsOptions{
		RefName: gl.Ptr(b.branch), Path: gl.Ptr(path), ListOptions: gl.ListOptions{PerPage: 1},
	}, gl.WithContext(ctx))
	if err != nil || len(commits) == 0 {
		slog.Warn("gitlab: committed, but could not look up the commit id", "path", path, "err", err)
		return gitops.Commit{}
	}
	return gitops.Commit{ID: commits[0].ID, URL: commits[0].WebURL}
}

// mapError turns GitLab's answers into gitops errors with a short message;
// GitLab signals a stale last_commit_id with 400 (and a message), 409 or 412
// depending on version, so all three are treated as a conflict.
func mapError(err error) error {
	if errors.Is(err, gl.ErrNotFound) {
		return gitops.ErrNotFound
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("gitlab: %w", err)
	}
	var er *gl.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return fmt.Errorf("gitlab: %w", err)
	}
	msg := er.Message
	lower := strings.ToLower(msg)
	switch code := er.Response.StatusCode; {
	case code == http.StatusConflict || code == http.StatusPreconditionFailed ||
		strings.Contains(lower, "changed since"):
		return fmt.Errorf("%w: read the file again and retry (gitlab %d)", gitops.ErrConflict, code)
	case strings.Contains(lower, "already exists"):
		return gitops.ErrExists
	case strings.Contains(lower, "doesn't exist") || strings.Contains(lower, "does not exist"):
		return gitops.ErrNotFound
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("gitlab refused the token (%d): check its scope and expiry", code)
	default:
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return fmt.Errorf("gitlab answered %d: %s", code, msg)
	}
}
