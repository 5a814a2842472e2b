package cortex_test

import (
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

func ids(l []cortex.Scored) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.ID
	}
	return out
}

func TestFuseWeights(t *testing.T) {
	bm25 := cortex.Rank{{Collection: "c", ID: "a"}, {Collection: "c", ID: "b"}, {Collection: "c", ID: "c"}}
	dense := cortex.Rank{{Collection: "c", ID: "c"}, {Collection: "c", ID: "d"}, {Collection: "c", ID: "a"}}
	for _, tc := range []struct {
		name    string
		k       int
		weights []float64
		want    []string
	}{
		// Equal weights: c (ranks 3 and 1) and a (1 and 3) tie; a's
		// best rank equals c's, so the id decides.
		{"equal", 60, nil, []string{"a", "c", "b", "d"}},
		// A light dense vote cannot lift d over b, which BM25 ranks second.
		{"light dense", 5, []float64{1, 0.3}, []string{"a", "c", "b", "d"}},
		// A dense-only fusion keeps the dense order.
		{"dense only", 5, []float64{0, 1}, []string{"c", "d", "a", "b"}},
	} {
		if got := ids(cortex.Fuse(tc.k, tc.weights, bm25, dense)); !equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFusionHint(t *testing.T) {
	s := newService(t, cortex.Options{})
	if o := s.Options(); o.RRFK != 5 || o.DenseWeight != 0.3 {
		t.Errorf("lexical embedder: k %d, dense weight %g; want its hint 5, 0.3", o.RRFK, o.DenseWeight)
	}
	s = newService(t, cortex.Options{RRFK: 60, DenseWeight: 1})
	if o := s.Options(); o.RRFK != 60 || o.DenseWeight != 1 {
		t.Errorf("options must override the hint: k %d, dense weight %g", o.RRFK, o.DenseWeight)
	}
}
