// Package gitlab is the gitops Backend for GitLab, writing through the
// repository Files API with a token scoped to one project.
package gitlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
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
		author: cfg.AuthorName, email: cfg.AuthorEmail, timeout: timeout}, nil
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

// Read returns a file's content on the branch.
func (b *Backend) Read(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	raw, _, err := b.client.RepositoryFiles.GetRawFile(b.project, path,
		&gl.GetRawFileOptions{Ref: gl.Ptr(b.branch)}, gl.WithContext(ctx))
	if err != nil {
		return "", mapError(err)
	}
	return string(raw), nil
}

// Apply commits one change. Update and delete send the file's last commit id
// so GitLab refuses to overwrite a concurrent change instead of losing it.
func (b *Backend) Apply(ctx context.Context, c gitops.Change) (gitops.Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
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
			return gitops.Commit{}, mapError(err)
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
