// Package gitrepo is the gitops Backend for any Git remote (GitHub, Gitea,
// Forgejo, a bare repository): it keeps a clone in the data directory,
// commits there and pushes.
package gitrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cluster-shepherd/shepherd/internal/gitops"
)

// Auth holds the credentials for the remote; set either the HTTP fields or
// the SSH fields.
type Auth struct {
	// Username defaults to "git" (what GitHub, Gitea and Forgejo accept with a token).
	Username string
	// Password is a password or access token; PasswordFile is read when Password is empty.
	Password     string
	PasswordFile string
	// SSHKeyFile is a private key for ssh:// remotes; KnownHostsFile is
	// required with it, since an unchecked host key would let anyone who can
	// redirect traffic receive our pushes.
	SSHKeyFile     string
	KnownHostsFile string
}

// Config says which remote and branch to write and where to keep the clone.
type Config struct {
	URL     string
	Branch  string
	DataDir string
	Auth    Auth
	// AuthorName and AuthorEmail sign the commits; they default to
	// "cluster-shepherd" and "shepherd@localhost".
	AuthorName  string
	AuthorEmail string
	// CommitURL builds the link to a commit: "{id}" is replaced by the commit
	// id, e.g. "https://forge.example/org/repo/commit/{id}". Empty means no link.
	CommitURL string
	// Timeout bounds one Read or Apply including network calls; 0 means 60s.
	Timeout time.Duration
}

// Backend writes to one branch of one remote. It serialises its own writes;
// races with other writers are detected at push time.
type Backend struct {
	cfg  Config
	auth transport.AuthMethod
	// secret is the resolved password or token, kept to scrub it from errors.
	secret string
	dir    string

	mu   sync.Mutex
	repo *git.Repository
	// beforePush lets tests commit to the remote between our commit and
	// our push, to reproduce a push race deterministically.
	beforePush func()
}

var _ gitops.Backend = (*Backend)(nil)

// New returns a Backend; the clone is made on first use.
func New(cfg Config) (*Backend, error) {
	if cfg.URL == "" || cfg.Branch == "" || cfg.DataDir == "" {
		return nil, errors.New("git: remote URL, branch and data directory are required")
	}
	if cfg.AuthorName == "" {
		cfg.AuthorName = "cluster-shepherd"
	}
	if cfg.AuthorEmail == "" {
		cfg.AuthorEmail = "shepherd@localhost"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	auth, err := authMethod(cfg.Auth)
	if err != nil {
		return nil, err
	}
	// One directory per remote and branch, so changing either in the config
	// never reuses a clone of something else.
	sum := sha256.Sum256([]byte(cfg.URL + "\x00" + cfg.Branch))
	dir := filepath.Join(cfg.DataDir, "gitops-"+hex.EncodeToString(sum[:8]))
	b := &Backend{cfg: cfg, auth: auth, dir: dir}
	if ba, ok := auth.(*githttp.BasicAuth); ok {
		b.secret = ba.Password
	}
	return b, nil
}

func authMethod(a Auth) (transport.AuthMethod, error) {
	if a.SSHKeyFile != "" {
		if a.KnownHostsFile == "" {
			return nil, errors.New("git: an SSH key needs a known_hosts file")
		}
		user := a.Username
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("git: load SSH key %s: %w", a.SSHKeyFile, err)
		}
		cb, err := knownhosts.New(a.KnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("git: load known_hosts: %w", err)
		}
		keys.HostKeyCallback = cb
		return keys, nil
	}
	pw := a.Password
	if pw == "" && a.PasswordFile != "" {
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("git: read password file: %w", err)
		}
		pw = strings.TrimSpace(string(b))
	}
	if pw == "" {
		return nil, nil // anonymous, e.g. a local bare repository
	}
	user := a.Username
	if user == "" {
		user = "git"
	}
	return &githttp.BasicAuth{Username: user, Password: pw}, nil
}

const remoteName = git.DefaultRemoteName

func (b *Backend) localRef() plumbing.ReferenceName {
	return plumbing.NewBranchReferenceName(b.cfg.Branch)
}
func (b *Backend) remoteRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, b.cfg.Branch)
}

// open clones on first use and opens the existing clone afterwards; a clone
// that cannot be opened (e.g. half-written by a crash) is made anew.
func (b *Backend) open(ctx context.Context) error {
	if b.repo != nil {
		return nil
	}
	repo, err := git.PlainOpen(b.dir)
	if err == nil {
		b.repo = repo
		return nil
	}
	if err := os.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("git: reset clone directory: %w", err)
	}
	repo, err = git.PlainCloneContext(ctx, b.dir, false, &git.CloneOptions{
		URL: b.cfg.URL, Auth: b.auth, ReferenceName: b.localRef(), SingleBranch: true,
	})
	if err != nil {
		_ = os.RemoveAll(b.dir)
		return fmt.Errorf("git: clone branch %s: %w", b.cfg.Branch, b.clean(err))
	}
	b.repo = repo
	return nil
}

// clean drops anything credential-like from transport errors; go-git can
// echo the remote URL, which may carry user info.
func (b *Backend) clean(err error) error {
	msg := err.Error()
	if p := b.secret; p != "" {
		msg = strings.ReplaceAll(msg, p, "***")
	}
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		return fmt.Errorf("the remote refused our credentials (%s)", msg)
	}
	return errors.New(msg)
}

// fetch brings the remote branch up to date and returns its head.
func (b *Backend) fetch(ctx context.Context) (plumbing.Hash, error) {
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", b.localRef(), b.remoteRef()))
	err := b.repo.FetchContext(ctx, &git.FetchOptions{RemoteName: remoteName, RefSpecs: []config.RefSpec{spec}, Auth: b.auth, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, fmt.Errorf("git: fetch: %w", b.clean(err))
	}
	ref, err := b.repo.Reference(b.remoteRef(), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("git: remote branch %s: %w", b.cfg.Branch, err)
	}
	return ref.Hash(), nil
}

// resetTo makes the local branch and the work tree exactly the given commit,
// discarding whatever a failed earlier attempt left behind.
func (b *Backend) resetTo(h plumbing.Hash) (*git.Worktree, error) {
	wt, err := b.repo.Worktree()
	if err != nil {
		return nil, err
	}
	if err := b.repo.Storer.SetReference(plumbing.NewHashReference(b.localRef(), h)); err != nil {
		return nil, err
	}
	if err := b.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, b.localRef())); err != nil {
		return nil, err
	}
	if err := wt.Reset(&git.ResetOptions{Commit: h, Mode: git.HardReset}); err != nil {
		return nil, fmt.Errorf("git: reset work tree: %w", err)
	}
	if err := wt.Clean(&git.CleanOptions{Dir: true}); err != nil {
		return nil, fmt.Errorf("git: clean work tree: %w", err)
	}
	return wt, nil
}

// Read returns a file's content at the head of the remote branch.
func (b *Backend) Read(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(ctx); err != nil {
		return "", err
	}
	head, err := b.fetch(ctx)
	if err != nil {
		return "", err
	}
	f, err := b.fileAt(head, path)
	if err != nil {
		return "", err
	}
	if f == nil {
		return "", gitops.ErrNotFound
	}
	r, err := f.Reader()
	if err != nil {
		return "", err
	}
	defer r.Close()
	content, err := io.ReadAll(r)
	return string(content), err
}

// fileAt returns the file at path in commit h, nil if absent, and refuses
// paths that pass through or end in a symlink: writing through one would
// escape the allowed directories.
func (b *Backend) fileAt(h plumbing.Hash, path string) (*object.File, error) {
	commit, err := b.repo.CommitObject(h)
	if err != nil {
		return nil, err
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, err
	}
	parts := strings.Split(path, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		entry, err := tree.FindEntry(prefix)
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		mode := entry.Mode
		if mode == filemode.Deprecated {
			mode = filemode.Regular
		}
		if err := gitops.CheckTreeEntry(prefix, uint32(mode), i == len(parts)-1); err != nil {
			return nil, err
		}
	}
	return tree.File(path)
}

// Apply commits one change and pushes it. If the push loses a race, the
// change is re-applied once on the new head, unless the other commit touched
// the same file: then the caller must read again, as with GitLab's
// last_commit_id check.
func (b *Backend) Apply(ctx context.Context, c gitops.Change) (gitops.Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(ctx); err != nil {
		return gitops.Commit{}, err
	}
	base, err := b.fetch(ctx)
	if err != nil {
		return gitops.Commit{}, err
	}
	for attempt := 1; ; attempt++ {
		h, err := b.commit(base, c)
		if err != nil {
			_, _ = b.resetTo(base)
			return gitops.Commit{}, err
		}
		if b.beforePush != nil {
			b.beforePush()
		}
		pushErr := b.push(ctx)
		if pushErr == nil {
			return gitops.Commit{ID: h.String(), URL: b.link(h)}, nil
		}
		head, err := b.fetch(ctx)
		if err != nil {
			return gitops.Commit{}, fmt.Errorf("push failed (%v), then %w", pushErr, err)
		}
		_, _ = b.resetTo(head)
		if head == base {
			return gitops.Commit{}, fmt.Errorf("git: push: %w", pushErr)
		}
		if attempt == 2 {
			return gitops.Commit{}, fmt.Errorf("%w: the branch %s moved again during our retry; push refused twice, try again later", gitops.ErrConflict, b.cfg.Branch)
		}
		same, err := b.sameFile(base, head, c.Path)
		if err != nil {
			return gitops.Commit{}, err
		}
		if !same {
			return gitops.Commit{}, fmt.Errorf("%w: someone else committed to %s meanwhile; read it again and retry", gitops.ErrConflict, c.Path)
		}
		base = head
	}
}

// commit applies c on top of base in the work tree and commits it locally.
func (b *Backend) commit(base plumbing.Hash, c gitops.Change) (plumbing.Hash, error) {
	f, err := b.fileAt(base, c.Path)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	switch {
	case c.Operation == gitops.OpCreate && f != nil:
		return plumbing.ZeroHash, gitops.ErrExists
	case (c.Operation == gitops.OpUpdate || c.Operation == gitops.OpDelete) && f == nil:
		return plumbing.ZeroHash, gitops.ErrNotFound
	}
	wt, err := b.resetTo(base)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	full := filepath.Join(b.dir, filepath.FromSlash(c.Path))
	switch c.Operation {
	case gitops.OpCreate, gitops.OpUpdate:
		if f != nil {
			if old, err := f.Contents(); err == nil && old == c.Content {
				return plumbing.ZeroHash, fmt.Errorf("%w: the file already has this content", gitops.ErrInvalid)
			}
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return plumbing.ZeroHash, err
		}
		if err := os.WriteFile(full, []byte(c.Content), 0o644); err != nil {
			return plumbing.ZeroHash, err
		}
		if _, err := wt.Add(c.Path); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("git: add: %w", err)
		}
	case gitops.OpDelete:
		if _, err := wt.Remove(c.Path); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("git: remove: %w", err)
		}
	default:
		return plumbing.ZeroHash, fmt.Errorf("%w: operation %q", gitops.ErrInvalid, c.Operation)
	}
	sig := &object.Signature{Name: b.cfg.AuthorName, Email: b.cfg.AuthorEmail, When: time.Now()}
	h, err := wt.Commit(c.Message, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("git: commit: %w", err)
	}
	return h, nil
}

func (b *Backend) push(ctx context.Context) error {
	spec := config.RefSpec(fmt.Sprintf("%s:%s", b.localRef(), b.localRef()))
	err := b.repo.PushContext(ctx, &git.PushOptions{RemoteName: remoteName, RefSpecs: []config.RefSpec{spec}, Auth: b.auth})
	if err != nil {
		return b.clean(err)
	}
	return nil
}

// sameFile reports whether path has the same content (or absence) in both commits.
func (b *Backend) sameFile(a, c plumbing.Hash, path string) (bool, error) {
	fa, err := b.fileAt(a, path)
	if err != nil {
		return false, err
	}
	fc, err := b.fileAt(c, path)
	if err != nil {
		return false, err
	}
	if fa == nil || fc == nil {
		return fa == nil && fc == nil, nil
	}
	return fa.Hash == fc.Hash, nil
}

func (b *Backend) link(h plumbing.Hash) string {
	if b.cfg.CommitURL == "" {
		return ""
	}
	return strings.ReplaceAll(b.cfg.CommitURL, "{id}", h.String())
}
