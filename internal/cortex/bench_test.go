package cortex_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
)

var benchDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

var (
	corpora   = map[int]*cortex.Service{}
	corporaMu sync.Mutex
)

// corpus returns a Service over n documents (background events, the eval
// incidents and runbooks, and some outcomes), built once per process.
func corpus(b *testing.B, n int) *cortex.Service {
	corporaMu.Lock()
	defer corporaMu.Unlock()
	if s, ok := corpora[n]; ok {
		return s
	}
	if benchDir == "" {
		var err error
		if benchDir, err = os.MkdirTemp("", "cortex-bench-"); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(benchDir, fmt.Sprintf("c%d.db", n)))
	if err != nil {
		b.Fatal(err)
	}
	s, err := cortex.NewService(cortex.Deps{Documents: st, Vectors: st, Graph: st, Embedder: lexical.New(0)},
		cortex.Options{Clock: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	set := loadEval(b)
	events, runbooks := evalDocs(set)
	ingestAll(b, s, cortex.CollectionEvents, append(events, background(n-len(events)-len(runbooks)-200, uint64(n))...))
	ingestAll(b, s, cortex.CollectionDocs, runbooks)
	for i := range 200 {
		ns := namespaces[i%len(namespaces)]
		out := []string{cortex.OutcomeSucceeded, cortex.OutcomeFailed, cortex.OutcomeIncident}[i%3]
		err := s.RecordOutcome(ctx, cortex.OutcomeRecord{Action: fmt.Sprintf("restart %s/%s", ns, apps[i%len(apps)]), Tool: "restart_workload",
			Arguments: map[string]any{"namespace": ns, "name": apps[i%len(apps)]}, Outcome: out, Cluster: "prod",
			When: now.Add(-time.Duration(i) * time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
	}
	corpora[n] = s
	return s
}

// latencies records each operation so p50/p99 can be reported beside ns/op.
func latencies(b *testing.B, op func(i int)) {
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		op(i)
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	if len(d) > 0 {
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(d[min(len(d)-1, len(d)*99/100)].Microseconds())/1000, "p99_ms")
	}
}

func BenchmarkQuery(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n/1000)+"k", func(b *testing.B) {
			s := corpus(b, n)
			set := loadEval(b)
			latencies(b, func(i int) {
				if _, err := s.Query(context.Background(), cortex.QueryRequest{Query: set[i%len(set)].Query, TopK: 5}); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

func BenchmarkRisk(b *testing.B) {
	actions := []cortex.RiskRequest{
		{Action: "restart authentik/authentik-server", Tool: "restart_workload", Arguments: map[string]any{"namespace": "authentik", "name": "authentik-server"}},
		{Action: "scale shop/api to 0", Tool: "scale_workload", Arguments: map[string]any{"namespace": "shop", "name": "api", "replicas": 0}},
		{Action: "suspend the apps kustomization", Tool: "run_flux_op", Arguments: map[string]any{"operation": "suspend", "namespace": "flux-system", "name": "apps"}},
		{Action: "delete the PVC data-postgres-0 in namespace db"},
	}
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n/1000)+"k", func(b *testing.B) {
			s := corpus(b, n)
			latencies(b, func(i int) {
				if _, err := s.Risk(context.Background(), actions[i%len(actions)]); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkIngest measures sustained ingest of events in batches of 500
// into a store that already holds 10k documents.
func BenchmarkIngest(b *testing.B) {
	s := newService(b, cortex.Options{})
	ingestAll(b, s, cortex.CollectionEvents, background(10_000, 7))
	docs := background(500*200, 8)
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		batch := docs[(i%200)*500 : (i%200+1)*500]
		if _, err := s.Ingest(context.Background(), cortex.IngestRequest{Collection: cortex.CollectionEvents, Documents: batch}); err != nil {
			b.Fatal(err)
		}
		n += len(batch)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkResidentMemory100k reports the process's resident memory with
// the 100k-document corpus open (vectors in memory, SQLite page cache).
func BenchmarkResidentMemory100k(b *testing.B) {
	s := corpus(b, 100_000)
	for b.Loop() {
		if _, err := s.Query(context.Background(), cortex.QueryRequest{Query: "pod keeps crashing OOMKilled"}); err != nil {
			b.Fatal(err)
		}
	}
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			b.ReportMetric(float64(kb)/1024, "rss_MB")
		}
	}
}

// BenchmarkQuality100k reports recall@5 and MRR@5 of hybrid retrieval for
// the evaluation incidents hidden in the 100k-document corpus, so that
// speed-ups of the keyword index are checked against what they cost.
func BenchmarkQuality100k(b *testing.B) {
	s := corpus(b, 100_000)
	set := loadEval(b)
	var q quality
	for b.Loop() {
		q = measure(b, s, set, cortex.Hybrid)
	}
	b.ReportMetric(q.recall, "recall@5")
	b.ReportMetric(q.mrr, "MRR@5")
}
