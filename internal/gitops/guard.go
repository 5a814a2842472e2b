package gitops

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Defaults used when the corresponding Guard field is zero.
const (
	DefaultAllowedDir = "clusters"
	DefaultMaxBytes   = 256 << 10
	DefaultTrailerKey = "Shepherd-Task"
	maxPathLen        = 512
	maxMessageLen     = 4000
)

// Guard holds the guardrails every write goes through before a backend sees it.
// Its zero value allows only files under clusters/ of at most DefaultMaxBytes.
type Guard struct {
	// AllowedDirs are repository-relative directories a change may touch;
	// "." allows the whole repository. Empty means DefaultAllowedDir.
	AllowedDirs []string
	// MaxBytes caps the content of a create or update; 0 means DefaultMaxBytes.
	MaxBytes int
	// MessagePrefix is put before every commit message, e.g. "shepherd: ".
	MessagePrefix string
	// TrailerKey names the commit trailer that records the approval; empty
	// means DefaultTrailerKey.
	TrailerKey string
}

// The path alphabet is deliberately small: it rules out spaces, shell and
// glob characters, backslashes, colons (Windows drives) and look-alike
// Unicode in one rule.
var (
	pathChars = regexp.MustCompile(`^[A-Za-z0-9._@+/-]+$`)
	taskIDRe  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func (g Guard) allowedDirs() []string {
	if len(g.AllowedDirs) == 0 {
		return []string{DefaultAllowedDir}
	}
	return g.AllowedDirs
}

func (g Guard) maxBytes() int {
	if g.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return g.MaxBytes
}

// NormalizePath returns the clean repository-relative form of p, or an error
// if p is absolute, climbs with "..", touches .git, or lies outside the
// allowed directories.
func (g Guard) NormalizePath(p string) (string, error) {
	if p == "" {
		return "", invalid("file_path is empty")
	}
	if len(p) > maxPathLen {
		return "", invalid("file_path is longer than %d bytes", maxPathLen)
	}
	if !pathChars.MatchString(p) {
		return "", invalid("file_path %q may contain only letters, digits and . _ @ + / -", p)
	}
	if strings.HasPrefix(p, "/") {
		return "", invalid("file_path %q must be relative to the repository root", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", invalid("file_path %q must not contain ..", p)
		}
		if strings.EqualFold(part, ".git") {
			return "", invalid("file_path %q must not touch .git", p)
		}
	}
	clean := path.Clean(p)
	if clean == "." || strings.HasSuffix(p, "/") {
		return "", invalid("file_path %q names a directory, not a file", p)
	}
	for _, d := range g.allowedDirs() {
		d = strings.Trim(path.Clean(d), "/")
		if d == "." || d == "" || strings.HasPrefix(clean, d+"/") {
			return clean, nil
		}
	}
	return "", invalid("file_path %q is outside the allowed directories (%s)", p, strings.Join(g.dirList(), ", "))
}

func (g Guard) dirList() []string {
	var out []string
	for _, d := range g.allowedDirs() {
		out = append(out, strings.Trim(path.Clean(d), "/")+"/")
	}
	return out
}

// Validate checks a write: operation, path, message, approval id, content size
// and, for YAML and JSON files, that the content parses.
func (g Guard) Validate(c Change) error {
	switch c.Operation {
	case OpCreate, OpUpdate, OpDelete:
	case OpRead:
		return invalid("read is not a write")
	default:
		return invalid("unknown operation %q: use create, update or delete", c.Operation)
	}
	p, err := g.NormalizePath(c.Path)
	if err != nil {
		return err
	}
	if p != c.Path {
		return invalid("file_path %q is not normalized (want %q)", c.Path, p)
	}
	if !taskIDRe.MatchString(c.TaskID) {
		return invalid("a write needs the id of the approved task or assessment")
	}
	if err := checkMessage(c.Message); err != nil {
		return err
	}
	if c.Operation == OpDelete {
		if c.Content != "" {
			return invalid("delete takes no content")
		}
		return nil
	}
	if len(c.Content) > g.maxBytes() {
		return invalid("content is %d bytes, more than the limit of %d", len(c.Content), g.maxBytes())
	}
	if !utf8.ValidString(c.Content) || strings.ContainsRune(c.Content, 0) {
		return invalid("content must be UTF-8 text")
	}
	return checkSyntax(p, c.Content)
}

func checkMessage(m string) error {
	m = strings.TrimSpace(m)
	if m == "" {
		return invalid("commit_message is empty")
	}
	if len(m) > maxMessageLen {
		return invalid("commit_message is longer than %d bytes", maxMessageLen)
	}
	for _, r := range m {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return invalid("commit_message contains control characters")
		}
	}
	return nil
}

// checkSyntax refuses YAML and JSON that would not parse, because Flux would
// fail on it after the commit and the cluster would drift from Git.
func checkSyntax(p, content string) error {
	switch strings.ToLower(path.Ext(p)) {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(strings.NewReader(content))
		for i := 1; ; i++ {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return invalid("content is not valid YAML (document %d): %v", i, err)
			}
		}
	case ".json":
		var v any
		if err := json.Unmarshal([]byte(content), &v); err != nil {
			return invalid("content is not valid JSON: %v", err)
		}
	}
	return nil
}

// CommitMessage returns the message a validated change is committed with:
// prefix, the model's message, and a trailer naming the approval.
func (g Guard) CommitMessage(c Change) string {
	key := g.TrailerKey
	if key == "" {
		key = DefaultTrailerKey
	}
	return g.MessagePrefix + strings.TrimSpace(c.Message) + "\n\n" + key + ": " + c.TaskID + "\n"
}

// Git tree entry modes.
const (
	ModeDir        = 0o040000
	ModeFile       = 0o100644
	ModeExecutable = 0o100755
	ModeSymlink    = 0o120000
	ModeSubmodule  = 0o160000
)

// CheckTreeEntry refuses the entry at prefix, one component of a change's
// path, when writing through it could escape the allowed directories (a
// symlink or a submodule) or it is not what the path needs: a directory
// before the last component, a regular file at the last. Both backends use
// it, so they refuse the same paths with the same words.
func CheckTreeEntry(prefix string, mode uint32, last bool) error {
	switch {
	case mode == ModeSymlink:
		return fmt.Errorf("%w: %s is a symlink", ErrInvalid, prefix)
	case mode == ModeSubmodule:
		return fmt.Errorf("%w: %s is a submodule", ErrInvalid, prefix)
	case !last && mode != ModeDir:
		return fmt.Errorf("%w: %s is a file, not a directory", ErrInvalid, prefix)
	case last && mode == ModeDir:
		return fmt.Errorf("%w: %s is a directory", ErrInvalid, prefix)
	case last && mode != ModeFile && mode != ModeExecutable:
		return fmt.Errorf("%w: %s has unsupported mode %o", ErrInvalid, prefix, mode)
	}
	return nil
}
