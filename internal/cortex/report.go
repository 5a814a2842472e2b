package cortex

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxReportDocuments is how many documents of one collection a report reads
// (newest first); a busier window is reported as partial.
const MaxReportDocuments = 2000

// reportWindow is the default window of a report: a feature cluster's week.
const reportWindow = 7 * 24 * time.Hour

// maxProblemText caps a problem's text in a report.
const maxProblemText = 300

// Report summarises what one cluster went through since a time: its most
// frequent Warning events, the outcomes of the actions taken in it, and a
// markdown block saying so for a promotion PR. An unknown cluster gets an
// empty report. Same documents, same clock: same report.
func (s *Service) Report(ctx context.Context, req ReportRequest) (ReportResponse, error) {
	now := s.opts.Clock().UTC()
	req.Cluster = strings.TrimSpace(req.Cluster)
	if err := CheckKey("cluster", req.Cluster); err != nil {
		return ReportResponse{}, invalid("%s", err)
	}
	if req.Since.IsZero() {
		req.Since = now.Add(-reportWindow)
	}
	if req.Since.After(now) {
		return ReportResponse{}, invalid("since %s is in the future (now is %s)", req.Since.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if req.Top == 0 {
		req.Top = DefaultReportTop
	}
	if req.Top < 1 || req.Top > MaxReportTop {
		return ReportResponse{}, invalid("top must be between 1 and %d, got %d", MaxReportTop, req.Top)
	}
	rep := ReportResponse{Cluster: req.Cluster, Since: req.Since.UTC(), Until: now, Documents: map[string]int{},
		Problems: []Problem{}, Failures: []ActionOutcome{}}
	// Only events and outcomes are read further; the rest are counted.
	var events, chat []Document
	for _, c := range Collections {
		docs, err := s.docs.Recent(ctx, c, req.Cluster, req.Since, MaxReportDocuments+1)
		if err != nil {
			return ReportResponse{}, unavailable("report on %s: %w", req.Cluster, err)
		}
		if len(docs) > MaxReportDocuments {
			docs = docs[:MaxReportDocuments]
			rep.Partial = append(rep.Partial, c)
		}
		rep.Documents[c] = len(docs)
		switch c {
		case CollectionEvents:
			events = docs
		case CollectionChat:
			chat = docs
		}
	}

	for _, d := range events {
		rep.Problems = append(rep.Problems, problemOf(d))
	}
	sort.Slice(rep.Problems, func(i, j int) bool {
		a, b := rep.Problems[i], rep.Problems[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if !a.LastSeen.Equal(b.LastSeen) {
			return a.LastSeen.After(b.LastSeen)
		}
		return a.ID < b.ID
	})

	for _, d := range chat {
		o := ActionOutcome{ID: d.ID, When: metaTime(d, "when", d.CreatedAt).UTC(), Action: d.Metadata["action"],
			Tool: d.Metadata["tool"], Outcome: d.Metadata["outcome"]}
		switch o.Outcome {
		case OutcomeSucceeded:
			rep.Outcomes.Succeeded++
			continue
		case OutcomeFailed:
			rep.Outcomes.Failed++
		case OutcomeIncident:
			rep.Outcomes.Incident++
		default:
			continue // a conversation, not an outcome
		}
		if o.Action == "" {
			o.Action = oneLine(d.Text, maxProblemText)
		}
		rep.Failures = append(rep.Failures, o)
	}
	sort.Slice(rep.Failures, func(i, j int) bool {
		a, b := rep.Failures[i], rep.Failures[j]
		if (a.Outcome == OutcomeIncident) != (b.Outcome == OutcomeIncident) {
			return a.Outcome == OutcomeIncident
		}
		if !a.When.Equal(b.When) {
			return a.When.After(b.When)
		}
		return a.ID < b.ID
	})

	rep.Summary = summary(rep, req.Top)
	rep.Problems = rep.Problems[:min(len(rep.Problems), req.Top)]
	rep.Failures = rep.Failures[:min(len(rep.Failures), req.Top)]
	return rep, nil
}

// problemOf reads a cluster_events document as the ingester writes it
// (metadata reason, object, namespace, count, last_seen; first seen is its
// creation time); what is missing falls back to the document's own fields.
func problemOf(d Document) Problem {
	count, err := strconv.Atoi(d.Metadata["count"])
	if err != nil || count < 1 {
		count = 1
	}
	return Problem{ID: d.ID, Namespace: d.Metadata["namespace"], Object: d.Metadata["object"], Reason: d.Metadata["reason"],
		Count: count, FirstSeen: d.CreatedAt.UTC(), LastSeen: metaTime(d, "last_seen", d.UpdatedAt).UTC(),
		Text: oneLine(d.Text, maxProblemText)}
}

// metaTime is the RFC 3339 time in metadata key, or fallback.
func metaTime(d Document, key string, fallback time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339, d.Metadata[key]); err == nil {
		return t
	}
	return fallback
}

// summary renders a report (problems and failures not yet cut to top) as
// markdown. Text from the cluster goes into code spans, so an event message
// cannot add links, images or HTML to the PR it is pasted into.
func summary(rep ReportResponse, top int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Promotion report for cluster %s (since %s until %s)\n\n", name(rep.Cluster), day(rep.Since), day(rep.Until))
	counts := make([]string, len(Collections))
	for i, c := range Collections {
		counts[i] = fmt.Sprintf("%d %s", rep.Documents[c], c)
	}
	fmt.Fprintf(&b, "Documents updated in the window: %s.", strings.Join(counts, ", "))
	if len(rep.Partial) > 0 {
		fmt.Fprintf(&b, " Only the newest %d of %s were read: what follows is a lower bound.", MaxReportDocuments, strings.Join(rep.Partial, " and "))
	}
	b.WriteString("\n\n")

	shown := min(len(rep.Problems), top)
	if shown == 0 {
		b.WriteString("### Problems\n\nNo Warning events recorded.\n\n")
	} else {
		fmt.Fprintf(&b, "### Problems: top %d of %d Warning events by count\n\n", shown, len(rep.Problems))
		for i, p := range rep.Problems[:shown] {
			fmt.Fprintf(&b, "%d. %d× (first seen %s, last %s) %s\n", i+1, p.Count, day(p.FirstSeen), day(p.LastSeen), code(p.Text))
		}
		b.WriteString("\n")
	}

	o := rep.Outcomes
	if o == (OutcomeCounts{}) {
		b.WriteString("### Action outcomes\n\nNo actions recorded.\n\n")
	} else {
		fmt.Fprintf(&b, "### Action outcomes: %d succeeded, %d failed, %d incident\n\n", o.Succeeded, o.Failed, o.Incident)
		for _, f := range rep.Failures[:min(len(rep.Failures), top)] {
			fmt.Fprintf(&b, "- %s %s: %s", f.Outcome, day(f.When), code(f.Action))
			if f.Tool != "" {
				fmt.Fprintf(&b, " via %s", code(f.Tool))
			}
			fmt.Fprintf(&b, " (%s)\n", code(f.ID))
		}
		if len(rep.Failures) > top {
			fmt.Fprintf(&b, "- … %d more failed or incident outcomes not listed (raise top)\n", len(rep.Failures)-top)
		}
		b.WriteString("\n")
	}

	b.WriteString("**Verdict:** " + verdict(rep) + "\n")
	return b.String()
}

// verdict is the report in one line: the incidents, else the failures, else
// that nothing went wrong (or that there was nothing to go on).
func verdict(rep ReportResponse) string {
	o := rep.Outcomes
	if o.Incident > 0 {
		var named []string
		for _, f := range rep.Failures {
			if f.Outcome != OutcomeIncident || len(named) == 3 {
				break
			}
			named = append(named, fmt.Sprintf("%s (%s)", code(oneLine(f.Action, 120)), code(f.ID)))
		}
		more := ""
		if o.Incident > len(named) {
			more = fmt.Sprintf(" and %d more", o.Incident-len(named))
		}
		v := fmt.Sprintf("%d actions caused incidents: ", o.Incident)
		if o.Incident == 1 {
			v = "1 action caused an incident: "
		}
		v += strings.Join(named, "; ") + more
		if o.Failed > 0 {
			v += fmt.Sprintf("; %s failed", plural(o.Failed, "other action"))
		}
		return v + "."
	}
	v := "No incidents recorded"
	if o.Failed > 0 {
		v += fmt.Sprintf("; %s failed", plural(o.Failed, "action"))
	}
	total := 0
	for _, n := range rep.Documents {
		total += n
	}
	if total == 0 {
		v += fmt.Sprintf("; Cortex holds nothing of cluster %s in this window (is the name right?)", name(rep.Cluster))
	}
	return v + "."
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// code puts text on one line in a markdown code span.
func code(s string) string {
	s = strings.ReplaceAll(oneLine(s, len(s)), "`", "'")
	if s == "" {
		s = "-"
	}
	return "`" + s + "`"
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// name is a cluster name as markdown: plain when it is a plain name.
func name(s string) string {
	if plainName.MatchString(s) {
		return s
	}
	return code(s)
}
