// Package gitops turns a gitops_change request into a guarded commit on a Git
// backend: the Guard decides what may be written, a Backend writes it.
package gitops

import (
	"context"
	"errors"
	"fmt"
)

// Operation names one of the gitops_change operations.
type Operation string

// The operations of gitops_change; only OpRead is read-only.
const (
	OpRead   Operation = "read"
	OpCreate Operation = "create"
	OpUpdate Operation = "update"
	OpDelete Operation = "delete"
)

// ParseOperation maps the tool argument to an Operation, refusing anything else.
func ParseOperation(s string) (Operation, error) {
	switch op := Operation(s); op {
	case OpRead, OpCreate, OpUpdate, OpDelete:
		return op, nil
	}
	return "", fmt.Errorf("unknown operation %q: use read, create, update or delete", s)
}

// Change is one write to the repository; Message is the model's message
// before the Guard adds its prefix and trailer.
type Change struct {
	Operation Operation
	Path      string
	Content   string
	Message   string
	// TaskID names the approved task (or auto assessment) that authorized
	// this write; it is recorded in the commit trailer so history can be
	// traced back to the approval.
	TaskID string
}

// Commit identifies the commit a write produced.
type Commit struct {
	ID string `json:"commit_id"`
	// URL links to the commit in the forge's web UI, empty when unknown.
	URL string `json:"url,omitempty"`
}

// Backend reads and writes files of one branch of one repository.
// Backends assume the change was already validated by a Guard.
type Backend interface {
	Read(ctx context.Context, path string) (string, error)
	Apply(ctx context.Context, c Change) (Commit, error)
}

// Errors that backends return (wrapped) so callers can tell the model what
// to do next without parsing forge-specific messages.
var (
	// ErrNotFound means the file does not exist on the branch.
	ErrNotFound = errors.New("file not found")
	// ErrExists means create was asked for a file that already exists.
	ErrExists = errors.New("file already exists")
	// ErrConflict means the file or branch changed concurrently; read again and retry.
	ErrConflict = errors.New("file changed concurrently")
	// ErrInvalid means the change was refused by the guardrails.
	ErrInvalid = errors.New("invalid change")
)

// Service is the entry point for the gitops_change tool: it validates every
// request with its Guard before the Backend sees it.
type Service struct {
	Guard   Guard
	Backend Backend
}

// Read returns the content of a file inside the allowed directories.
func (s *Service) Read(ctx context.Context, path string) (string, error) {
	p, err := s.Guard.NormalizePath(path)
	if err != nil {
		return "", err
	}
	content, err := s.Backend.Read(ctx, p)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return content, nil
}

// Apply validates a write, stamps its commit message and commits it.
func (s *Service) Apply(ctx context.Context, c Change) (Commit, error) {
	if c.Operation == OpRead {
		return Commit{}, fmt.Errorf("%w: read is not a write; call Read", ErrInvalid)
	}
	p, err := s.Guard.NormalizePath(c.Path)
	if err != nil {
		return Commit{}, err
	}
	c.Path = p
	if err := s.Guard.Validate(c); err != nil {
		return Commit{}, err
	}
	c.Message = s.Guard.CommitMessage(c)
	commit, err := s.Backend.Apply(ctx, c)
	if err != nil {
		return Commit{}, fmt.Errorf("%s %s: %w", c.Operation, p, err)
	}
	return commit, nil
}
