package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AuditRecord is one line of the audit log. A write tool produces two
// records sharing CallID: the decision (before anything runs) and the result.
type AuditRecord struct {
	Time          time.Time      `json:"time"`
	CallID        string         `json:"call_id,omitempty"`
	Tool          string         `json:"tool"`
	Arguments     map[string]any `json:"arguments,omitempty"`
	Decision      string         `json:"decision"`
	Authorization string         `json:"authorization,omitempty"`
	Result        string         `json:"result,omitempty"`
	Error         string         `json:"error,omitempty"`
	DurationMS    int64          `json:"duration_ms"`
	Client        string         `json:"client,omitempty"`
}

// Audit decisions.
const (
	DecisionAllowed    = "allowed"    // read-only or guard tool call
	DecisionAuthorized = "authorized" // write about to run under an authorization
	DecisionRefused    = "refused"    // write refused by the gate
	DecisionExecuted   = "executed"   // write ran (see error for failure)
)

// maxAuditResult keeps one record readable; results are already capped for
// the model, this only guards against a caller forgetting.
const maxAuditResult = 4096

// AuditLog appends JSON lines to a file and fsyncs each one, because a
// write that is not on record must not happen. With rotation on, a file that
// would grow past MaxBytes is renamed to path.1 (path.1 to path.2, and so on,
// the oldest beyond Keep removed) before the record is written.
type AuditLog struct {
	mu       sync.Mutex
	f        *os.File
	path     string
	size     int64
	maxBytes int64
	keep     int
	observe  func(rec AuditRecord, err error)
}

// AuditOption configures OpenAuditLog.
type AuditOption func(*AuditLog)

// RotateAudit turns rotation on: files of at most maxBytes, keep old ones.
func RotateAudit(maxBytes int64, keep int) AuditOption {
	return func(a *AuditLog) { a.maxBytes, a.keep = maxBytes, max(1, keep) }
}

// ObserveAudit calls fn after each Write with the record (secrets masked)
// and its error, for metrics. fn must be quick and must not block.
func ObserveAudit(fn func(rec AuditRecord, err error)) AuditOption {
	return func(a *AuditLog) { a.observe = fn }
}

// OpenAuditLog opens (creating if needed) path for appending.
func OpenAuditLog(path string, opts ...AuditOption) (*AuditLog, error) {
	a := &AuditLog{path: path}
	for _, o := range opts {
		o(a)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := a.open(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *AuditLog) open() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open audit log: %w", err)
	}
	a.f, a.size = f, st.Size()
	return nil
}

// rotate shifts path.N to path.N+1 (dropping the last), path to path.1, and
// opens a new path. On failure the log stays closed and writes are refused.
func (a *AuditLog) rotate() error {
	if err := a.f.Close(); err != nil {
		a.f = nil
		return fmt.Errorf("rotate audit log: %w", err)
	}
	a.f = nil
	name := func(i int) string { return fmt.Sprintf("%s.%d", a.path, i) }
	if err := os.Remove(name(a.keep)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	for i := a.keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate audit log: %w", err)
		}
	}
	if err := os.Rename(a.path, name(1)); err != nil {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	if d, err := os.Open(filepath.Dir(a.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return a.open()
}

// Write appends one record with secrets masked. An error means the record is
// not durable; callers must then refuse a write.
func (a *AuditLog) Write(rec AuditRecord) (err error) {
	if a == nil {
		return fmt.Errorf("audit log is not configured")
	}
	if a.observe != nil {
		defer func() { a.observe(rec, err) }()
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	rec.Arguments = MaskArgs(rec.Arguments)
	rec.Result = MaskText(truncate(rec.Result, maxAuditResult))
	rec.Error = MaskText(truncate(rec.Error, maxAuditResult))
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil && a.path != "" && a.maxBytes > 0 {
		// A failed rotation left it closed; try again rather than refuse
		// every write until a restart.
		if err := a.open(); err != nil {
			return err
		}
	}
	if a.f == nil {
		return fmt.Errorf("audit log is closed")
	}
	if a.maxBytes > 0 && a.size > 0 && a.size+int64(len(b)) > a.maxBytes {
		if err := a.rotate(); err != nil {
			return err
		}
	}
	n, err := a.f.Write(b)
	a.size += int64(n)
	if err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("sync audit log: %w", err)
	}
	return nil
}

// Close closes the file.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.path = "" // closed for good: no reopening after a failed rotation
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…[truncated]"
}

const masked = "***"

var secretKey = regexp.MustCompile(`(?i)(token|passw|secret|api[_-]?key|private[_-]?key|^key$|credential|authorization|cookie|dsn|connection[_-]?string)`)

var secretText = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`),
	regexp.MustCompile(`(?i)((?:password|passwd|token|secret|api[_-]?key)["']?\s*[:=]\s*["']?)[^\s"',;&]+`),
	regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@`),
	regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`),
}

// MaskText hides bearer tokens, key=value secrets, URL passwords and PEM keys.
func MaskText(s string) string {
	if s == "" {
		return s
	}
	s = secretText[0].ReplaceAllString(s, "$1 "+masked)
	s = secretText[1].ReplaceAllString(s, "${1}"+masked)
	s = secretText[2].ReplaceAllString(s, "${1}"+masked+"@")
	s = secretText[3].ReplaceAllString(s, masked)
	return s
}

// MaskArgs returns a copy of args with secret-named keys and secret-looking
// strings masked.
func MaskArgs(args map[string]any) map[string]any {
	if args == nil {
		return nil
	}
	out, _ := maskValue(args, 0).(map[string]any)
	return out
}

func maskValue(v any, depth int) any {
	if depth > maxDepth {
		return masked
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if secretKey.MatchString(k) {
				if _, isMap := val.(map[string]any); !isMap {
					out[k] = masked
					continue
				}
			}
			out[k] = maskValue(val, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = maskValue(val, depth+1)
		}
		return out
	case string:
		return MaskText(x)
	default:
		return v
	}
}

type clientKey struct{}

// WithClient records the caller's identity (MCP session, token subject) in
// ctx for the audit log and for "who approved".
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

// ClientFrom returns the identity set by WithClient, or "unknown".
func ClientFrom(ctx context.Context) string {
	if s, ok := ctx.Value(clientKey{}).(string); ok && strings.TrimSpace(s) != "" {
		return s
	}
	return "unknown"
}

type auditMarkKey struct{}

// WithAuditMark returns a context in which the gate notes each audit record
// it writes for the call, and a func that reports whether it wrote one. The
// tool layer uses it to audit what the gate never saw (a write refused for
// bad arguments) without writing a second record for what it did see.
func WithAuditMark(ctx context.Context) (context.Context, func() bool) {
	var done atomic.Bool
	return context.WithValue(ctx, auditMarkKey{}, &done), done.Load
}

func markAudited(ctx context.Context) {
	if m, ok := ctx.Value(auditMarkKey{}).(*atomic.Bool); ok {
		m.Store(true)
	}
}
