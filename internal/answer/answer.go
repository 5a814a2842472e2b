// Package answer shapes what a tool returns to the model: compact lines
// under a byte cap, and when the cap cuts, a marker that says how much was
// left out and how to narrow the question. Every tool shares it, so no tool
// can return an unbounded answer.
package answer

import (
	"fmt"
	"strings"
)

// DefaultMaxBytes is the default cap on one tool answer.
const DefaultMaxBytes = 16 << 10

// markerRoom is kept free for the truncation marker.
const markerRoom = 200

// Builder accumulates lines of an answer until the cap is reached. Lines
// after the first one that does not fit are counted, not added, so the
// answer keeps its ranking order.
type Builder struct {
	max     int
	b       strings.Builder
	omitted int
	full    bool
}

// New returns a Builder capped at max bytes (DefaultMaxBytes when max <= 0).
func New(max int) *Builder {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	return &Builder{max: max}
}

// Line adds one line (a newline is appended). It reports false and counts
// the line as omitted when the cap would be exceeded.
func (a *Builder) Line(s string) bool {
	if !a.full && a.b.Len()+len(s)+1 <= a.max-markerRoom {
		a.b.WriteString(s)
		a.b.WriteByte('\n')
		return true
	}
	a.full = true
	a.omitted++
	return false
}

// Linef adds one formatted line; once the cap is reached it only counts,
// so a long list costs no formatting past what is shown.
func (a *Builder) Linef(format string, args ...any) bool {
	if a.full {
		a.omitted++
		return false
	}
	return a.Line(fmt.Sprintf(format, args...))
}

// Omitted is the number of lines left out so far.
func (a *Builder) Omitted() int { return a.omitted }

// Len is the number of bytes written so far.
func (a *Builder) Len() int { return a.b.Len() }

// String returns the answer; when lines were left out it ends with a
// marker naming how many of what were cut and how to narrow the query.
func (a *Builder) String(noun, hint string) string {
	if a.omitted == 0 {
		return strings.TrimRight(a.b.String(), "\n")
	}
	marker := fmt.Sprintf("[truncated: %d more %s not shown (answer capped at %d bytes)", a.omitted, noun, a.max)
	if hint != "" {
		marker += "; narrow with " + hint
	}
	marker += "]"
	if len(marker) > markerRoom {
		marker = marker[:markerRoom-4] + "...]"
	}
	return a.b.String() + marker
}

// Clip shortens s to at most n bytes on a rune boundary, marking the cut
// with an ellipsis. Messages from the API (Flux build errors, event text)
// can be kilobytes; a model needs their first sentence.
func Clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
