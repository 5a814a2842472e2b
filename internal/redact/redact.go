// Package redact masks secret-looking values (tokens, passwords, keys,
// connection strings) in text before it reaches a model, a log or an audit
// record. It errs on the side of masking: a hidden harmless value costs a
// little context, a leaked password costs the cluster.
package redact

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
)

// Mask is what replaces a secret.
const Mask = "****"

// A rule runs only when its text contains one of its triggers (lower case):
// regexp matching is the expensive part of every tool answer, and most
// answers contain nothing secret-looking.
var rules = []struct {
	triggers []string
	re       *regexp.Regexp
	repl     string
}{
	// PEM private keys, possibly spanning lines.
	{[]string{"private key-----"}, regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)`), "-----BEGIN PRIVATE KEY----- " + Mask + " -----END PRIVATE KEY-----"},
	// Authorization headers and bearer/basic credentials.
	{[]string{"bearer", "basic"}, regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*`), "$1 " + Mask},
	// user:password@ in URLs and connection strings.
	{[]string{"://"}, regexp.MustCompile(`(?i)([a-z][a-z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+@`), "${1}" + Mask + "@"},
	// key=value / key: value where the key names a secret. The value stops at
	// whitespace, quotes or separators so the rest of the line survives.
	{[]string{"pass", "pwd", "secret", "token", "key", "credential"}, regexp.MustCompile(`(?i)([A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|credential)[A-Za-z0-9_.\-]*["']?\s*[:=]\s*["']?)([^\s"',;&}]{1,})`), "${1}" + Mask},
	// Well-known token shapes that appear without a telling key.
	{[]string{"eyj"}, regexp.MustCompile(`\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}`), Mask},
	{[]string{"akia", "asia"}, regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`), Mask},
	{[]string{"ghp", "gho", "ghu", "ghs", "ghr", "github_pat", "glpat", "xox"}, regexp.MustCompile(`\b(ghp|gho|ghu|ghs|ghr|github_pat|glpat|xox[abprs])[-_][A-Za-z0-9_\-]{10,}`), Mask},
	{[]string{"sk-"}, regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{16,}`), Mask},
	// Command-line flags and environment variables naming a secret, with the
	// value after a space: --password hunter2, PGPASSWORD hunter2.
	{[]string{"pass", "pwd", "secret", "token", "key"}, regexp.MustCompile(`(?i)((?:^|\s)--?[a-z0-9_\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key)[a-z0-9_\-]*\s+)([^\s\-][^\s"',;]*)`), "${1}" + Mask},
	{[]string{"pass", "pwd", "secret", "token", "key"}, regexp.MustCompile(`\b([A-Z0-9_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY)[A-Z0-9_]*\s+)([^\s\-][^\s"',;]*)`), "${1}" + Mask},
	// Authorization: Token abc / Authorization: Digest ...: any scheme.
	{[]string{"authorization"}, regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*["']?[A-Za-z]+\s+)([^\s"']+)`), "${1}" + Mask},
}

// String returns s with every secret-looking value replaced by Mask.
func String(s string) string {
	if s == "" {
		return s
	}
	lower := strings.ToLower(s)
	for _, r := range rules {
		for _, t := range r.triggers {
			if strings.Contains(lower, t) {
				s = r.re.ReplaceAllString(s, r.repl)
				lower = strings.ToLower(s)
				break
			}
		}
	}
	return s
}

var (
	pemBegin = regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)
	pemEnd   = regexp.MustCompile(`-----END [A-Z ]*PRIVATE KEY-----`)
)

// Lines masks each line in place and returns the slice. A private key that
// spans lines (as a log prints it) is masked whole: every line from its
// BEGIN line up to and including its END line.
func Lines(lines []string) []string {
	inKey := false
	for i, l := range lines {
		switch {
		case inKey:
			if pemEnd.MatchString(l) {
				inKey = false
				l = pemEnd.Split(l, 2)[1]
				lines[i] = Mask + " -----END PRIVATE KEY-----" + String(l)
				continue
			}
			lines[i] = Mask
		case pemBegin.MatchString(l) && !pemEnd.MatchString(l[pemBegin.FindStringIndex(l)[0]:]):
			inKey = true
			lines[i] = String(l[:pemBegin.FindStringIndex(l)[0]]) + "-----BEGIN PRIVATE KEY----- " + Mask
		default:
			lines[i] = String(l)
		}
	}
	return lines
}

var secretKey = regexp.MustCompile(`(?i)password|passwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|credential|authorization`)

// IsSecretKey reports whether a map key or field name names a secret, so its
// whole value should be masked.
func IsSecretKey(k string) bool { return secretKey.MatchString(k) }

// Value masks a decoded JSON-like value: values under secret-looking keys
// are replaced whole, strings elsewhere are masked by String.
func Value(v any) any {
	switch t := v.(type) {
	case string:
		return String(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if IsSecretKey(k) {
				out[k] = Mask
				continue
			}
			out[k] = Value(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = Value(x)
		}
		return out
	default:
		return v
	}
}

// Handler wraps a slog.Handler so that messages and string attributes are
// masked before they are written.
type Handler struct{ next slog.Handler }

// NewHandler returns a masking slog handler in front of next.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(maskAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(as))
	for i, a := range as {
		masked[i] = maskAttr(a)
	}
	return &Handler{next: h.next.WithAttrs(masked)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler { return &Handler{next: h.next.WithGroup(name)} }

func maskAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if IsSecretKey(a.Key) {
			return slog.String(a.Key, Mask)
		}
		return slog.String(a.Key, String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = maskAttr(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, String(err.Error()))
		}
		return slog.String(a.Key, String(v.String()))
	}
	return a
}

// Contains reports whether s still holds any of the given secrets; tests use
// it to prove nothing leaked.
func Contains(s string, secrets ...string) bool {
	for _, x := range secrets {
		if x != "" && strings.Contains(s, x) {
			return true
		}
	}
	return false
}
