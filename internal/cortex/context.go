package cortex

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

// words returns the distinct stems of text (stopwords dropped), with camelCase
// parts, the vocabulary for the explainable similarities below.
func words(text string) map[string]bool {
	out := map[string]bool{}
	for _, t := range lexical.Tokens(text) {
		out[t.Stem] = true
		for _, p := range t.Parts {
			out[p] = true
		}
	}
	return out
}

// cosine of two word sets.
func cosine(a, b map[string]bool) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	n := 0
	for w := range a {
		if b[w] {
			n++
		}
	}
	return float64(n) / math.Sqrt(float64(len(a))*float64(len(b)))
}

// coverage is the share of a's words found in b.
func coverage(a, b map[string]bool) float64 {
	if len(a) == 0 {
		return 0
	}
	n := 0
	for w := range a {
		if b[w] {
			n++
		}
	}
	return float64(n) / float64(len(a))
}

type matchedError struct {
	err       KnownError
	solutions []Solution
}

// matchingErrors returns the known errors that text (a question, an action)
// or the given documents point at: a document that is one of the error's
// incidents, or most of the error's pattern words present in text.
func (s *Service) matchingErrors(ctx context.Context, text string, docIDs []string) ([]matchedError, error) {
	known, err := s.graph.ListKnownErrors(ctx)
	if err != nil {
		return nil, unavailable("list known errors: %w", err)
	}
	tw := words(text)
	var out []matchedError
	for _, e := range known {
		hit := false
		for _, inc := range e.Incidents {
			if slices.Contains(docIDs, inc) {
				hit = true
				break
			}
		}
		if !hit && coverage(words(e.Pattern), tw) < 0.6 {
			continue
		}
		sols, err := s.graph.SolutionsFor(ctx, e.ID)
		if err != nil {
			return nil, unavailable("solutions for %s: %w", e.ID, err)
		}
		out = append(out, matchedError{err: e, solutions: sols})
	}
	return out, nil
}

// mergedContext is the block an agent pastes into its reasoning: verified
// solutions first (what is known to work), then matching events (what is
// happening), then past conversation outcomes (what was tried), then
// reference material; within the byte budget, with a marker when cut.
func (s *Service) mergedContext(ctx context.Context, query string, hits []Hit) (string, error) {
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	matched, err := s.matchingErrors(ctx, query, ids)
	if err != nil {
		return "", err
	}
	type section struct {
		title string
		lines []string
	}
	var verified section
	verified.title = "Verified solutions"
	for _, m := range matched {
		for _, sol := range m.solutions {
			if sol.Verified {
				verified.lines = append(verified.lines, fmt.Sprintf("- [solution %s] %s (fixes known error %s: %s)",
					sol.ID, oneLine(sol.Description, 400), m.err.ID, oneLine(m.err.Pattern, 160)))
			}
		}
	}
	events := section{title: "Matching events"}
	outcomes := section{title: "Past conversations and outcomes"}
	refs := section{title: "Reference (manifests, runbooks)"}
	for _, h := range hits {
		line := "- [" + h.Collection + "/" + h.ID
		if h.Cluster != "" {
			line += " cluster=" + h.Cluster
		}
		if !h.UpdatedAt.IsZero() {
			line += " " + h.UpdatedAt.UTC().Format("2006-01-02 15:04")
		}
		if o := h.Metadata["outcome"]; o != "" {
			line += " outcome=" + o
		}
		line += "] " + oneLine(h.Text, 600)
		switch h.Collection {
		case CollectionEvents:
			events.lines = append(events.lines, line)
		case CollectionChat:
			outcomes.lines = append(outcomes.lines, line)
		default:
			refs.lines = append(refs.lines, line)
		}
	}
	var b strings.Builder
	budget := s.opts.ContextBudget
	dropped := 0
	for _, sec := range []section{verified, events, outcomes, refs} {
		if len(sec.lines) == 0 {
			continue
		}
		head := "## " + sec.title + "\n"
		for i, l := range sec.lines {
			add := l + "\n"
			if i == 0 {
				add = head + add
			}
			if b.Len()+len(add) > budget-80 {
				dropped += len(sec.lines) - i
				break
			}
			b.WriteString(add)
		}
	}
	if dropped > 0 {
		fmt.Fprintf(&b, "… %d more entries cut to fit %d bytes; narrow with collections or a smaller top_k\n", dropped, budget)
	}
	if b.Len() == 0 {
		return "No matching history.\n", nil
	}
	return b.String(), nil
}

// oneLine collapses whitespace and cuts s to at most n bytes on a rune
// boundary.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
