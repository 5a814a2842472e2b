package answer

import (
	"strconv"
	"strings"
	"testing"
)

func TestBuilderCaps(t *testing.T) {
	a := New(1000)
	added := 0
	for i := 0; i < 100; i++ {
		if a.Line(strings.Repeat("x", 49)) {
			added++
		}
	}
	out := a.String("workloads", "namespace=<ns>")
	if len(out) > 1000 {
		t.Fatalf("answer is %d bytes, cap 1000", len(out))
	}
	if a.Omitted() != 100-added || added == 0 {
		t.Fatalf("added %d omitted %d", added, a.Omitted())
	}
	want := "[truncated: " + itoa(100-added) + " more workloads not shown (answer capped at 1000 bytes); narrow with namespace=<ns>]"
	if !strings.HasSuffix(out, want) {
		t.Fatalf("marker missing: %q", out[len(out)-150:])
	}
}

func TestBuilderKeepsOrderAfterCut(t *testing.T) {
	a := New(300)
	a.Line(strings.Repeat("a", 90))
	a.Line(strings.Repeat("b", 200)) // does not fit
	a.Line("c")                      // would fit, but must not jump the queue
	out := a.String("lines", "")
	if strings.Contains(out, "\nc\n") || a.Omitted() != 2 {
		t.Fatalf("order broken: %q omitted=%d", out, a.Omitted())
	}
}

func TestNoMarkerWhenComplete(t *testing.T) {
	a := New(0)
	a.Line("one")
	a.Line("two")
	if got := a.String("x", "y"); got != "one\ntwo" {
		t.Fatalf("got %q", got)
	}
}

func TestClip(t *testing.T) {
	if got := Clip("a  b\n c", 10); got != "a b c" {
		t.Fatalf("got %q", got)
	}
	got := Clip(strings.Repeat("é", 20), 11)
	if len(got) > 11 || !strings.HasSuffix(got, "...") || strings.ContainsRune(got, '\uFFFD') {
		t.Fatalf("got %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
