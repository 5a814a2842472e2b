package cortex_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// incident is one line of testdata/eval.jsonl: a Warning event, the runbook
// passage that explains it, and a question as a tired operator types it.
type incident struct {
	ID      string `json:"id"`
	Event   string `json:"event"`
	Runbook string `json:"runbook"`
	Query   string `json:"query"`
}

func loadEval(t testing.TB) []incident {
	t.Helper()
	f, err := os.Open("testdata/eval.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []incident
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var in incident
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			t.Fatalf("eval.jsonl line %d: %v", len(out)+1, err)
		}
		out = append(out, in)
	}
	return out
}

func evalDocs(set []incident) (events, runbooks []cortex.Document) {
	for _, in := range set {
		events = append(events, cortex.Document{ID: "ev-" + in.ID, Cluster: "prod", Text: in.Event,
			Metadata: map[string]string{"kind": "event", "reason": "Warning"}})
		runbooks = append(runbooks, cortex.Document{ID: "rb-" + in.ID, Text: in.Runbook, Metadata: map[string]string{"kind": "runbook"}})
	}
	return events, runbooks
}

var (
	namespaces = []string{"shop", "billing", "media", "auth", "monitoring", "ingress", "db", "cache", "backup", "web",
		"search", "mail", "chat", "ci", "logging", "storage", "immich", "authentik", "nextcloud", "home", "vault", "kube-system",
		"flux-system", "cert-manager", "longhorn-system", "argo", "jobs", "data", "ml", "api"}
	apps = []string{"api", "worker", "frontend", "redis", "postgres", "scheduler", "gateway", "exporter", "sidecar", "indexer",
		"uploader", "consumer", "producer", "cron", "proxy", "server", "web", "ml", "thumbnailer", "mailer"}
	templates = []string{
		"Successfully assigned %[1]s/%[2]s-%[3]s to worker-%[4]d",
		"Pulling image \"registry.internal/%[1]s/%[2]s:%[5]d.%[4]d.0\"",
		"Successfully pulled image \"registry.internal/%[1]s/%[2]s:%[5]d.%[4]d.0\" in %[4]d.%[5]ds",
		"Created container %[2]s",
		"Started container %[2]s",
		"Scaled up replica set %[2]s-%[3]s to %[4]d",
		"Scaled down replica set %[2]s-%[3]s to %[4]d from %[5]d",
		"Back-off restarting failed container %[2]s in pod %[2]s-%[3]s",
		"Readiness probe failed: Get \"http://10.42.%[4]d.%[5]d:8080/ready\": dial tcp: connect: connection refused",
		"Liveness probe failed: HTTP probe failed with statuscode: 500",
		"Killing container with id containerd://%[3]s: Container failed liveness probe, will be restarted",
		"Stopping container %[2]s",
		"Created pod: %[2]s-%[3]s",
		"Deleted pod: %[2]s-%[3]s",
		"Job completed",
		"Saw completed job: %[2]s-%[3]s, status: Complete",
		"Reconciliation finished in %[4]dms, next run in 10m0s",
		"Updated Deployment %[1]s/%[2]s; image registry.internal/%[2]s:%[5]d",
		"Certificate %[2]s-tls is up to date and has not expired",
		"Container image \"registry.internal/%[2]s:%[5]d\" already present on machine",
		"Node worker-%[4]d status is now: NodeHasSufficientMemory",
		"MountVolume.SetUp succeeded for volume \"pvc-%[3]s\"",
		"AttachVolume.Attach succeeded for volume \"pvc-%[3]s\"",
		"Memory cgroup out of memory: Killed process %[5]d%[4]d (%[2]s)",
		"Error syncing pod %[3]s, skipping: failed to \"StartContainer\" for \"%[2]s\"",
	}
)

// Background returns n realistic, mostly routine events: the haystack the
// eval's incidents hide in, and the bulk of the benchmark corpora.
func background(n int, seed uint64) []cortex.Document {
	r := rand.New(rand.NewPCG(seed, 42))
	out := make([]cortex.Document, n)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		ns := namespaces[r.IntN(len(namespaces))]
		app := apps[r.IntN(len(apps))]
		tpl := templates[r.IntN(len(templates))]
		hash := fmt.Sprintf("%x", r.Uint32()&0xfffff)
		text := fmt.Sprintf(tpl, ns, app, hash, r.IntN(9)+1, r.IntN(40)+1)
		out[i] = cortex.Document{ID: fmt.Sprintf("bg-%d-%d", seed, i), Cluster: "prod",
			Text:      fmt.Sprintf("%s %s/%s-%s: %s", "Pod", ns, app, hash, text),
			Metadata:  map[string]string{"kind": "event", "namespace": ns, "object": "Pod " + ns + "/" + app + "-" + hash},
			CreatedAt: base.Add(time.Duration(i) * time.Second), UpdatedAt: base.Add(time.Duration(i) * time.Second)}
	}
	return out
}

func ingestAll(t testing.TB, s *cortex.Service, coll string, docs []cortex.Document) {
	t.Helper()
	for start := 0; start < len(docs); start += 1000 {
		if _, err := s.Ingest(context.Background(), cortex.IngestRequest{Collection: coll, Documents: docs[start:min(start+1000, len(docs))]}); err != nil {
			t.Fatal(err)
		}
	}
}

type quality struct{ recall, mrr float64 }

func measure(t testing.TB, s *cortex.Service, set []incident, mode cortex.Mode) quality {
	var q quality
	for _, in := range set {
		res, err := s.QueryMode(context.Background(), cortex.QueryRequest{Query: in.Query, TopK: 5}, mode)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"ev-" + in.ID: true, "rb-" + in.ID: true}
		found := 0
		for i, h := range res.Hits {
			if want[h.ID] {
				if found == 0 {
					q.mrr += 1 / float64(i+1)
				}
				found++
			}
		}
		q.recall += float64(found) / float64(len(want))
	}
	q.recall /= float64(len(set))
	q.mrr /= float64(len(set))
	return q
}

// TestRetrievalQuality measures recall@5 and MRR@5 of BM25 alone, dense
// (lexical embedder) alone and hybrid, on 60+ incidents hidden among
// routine events. Run with -v to see the figures.
func TestRetrievalQuality(t *testing.T) {
	set := loadEval(t)
	if len(set) < 60 {
		t.Fatalf("eval set has %d incidents, want at least 60", len(set))
	}
	s := newService(t, cortex.Options{})
	events, runbooks := evalDocs(set)
	ingestAll(t, s, cortex.CollectionEvents, append(events, background(3000, 1)...))
	ingestAll(t, s, cortex.CollectionDocs, runbooks)
	res := map[string]quality{}
	for name, mode := range map[string]cortex.Mode{"bm25": cortex.KeywordOnly, "dense": cortex.DenseOnly, "hybrid": cortex.Hybrid} {
		res[name] = measure(t, s, set, mode)
	}
	for _, name := range []string{"bm25", "dense", "hybrid"} {
		t.Logf("%-6s recall@5 %.3f  MRR@5 %.3f  (%d incidents, %d documents)", name, res[name].recall, res[name].mrr, len(set), 3000+2*len(set))
	}
	h, b, d := res["hybrid"], res["bm25"], res["dense"]
	if h.recall < min(b.recall, d.recall) || h.mrr < min(b.mrr, d.mrr) {
		t.Errorf("hybrid (%+v) is worse than both bm25 (%+v) and dense (%+v)", h, b, d)
	}
	// With the lexical embedder, dense adds little that BM25 lacks; its
	// fusion hint must at least keep hybrid level with BM25.
	if h.recall < b.recall-0.02 || h.mrr < b.mrr-0.02 {
		t.Errorf("hybrid (%+v) trails bm25 (%+v)", h, b)
	}
	if h.recall < 0.6 || h.mrr < 0.6 {
		t.Errorf("hybrid below the floor: %+v", h)
	}
}
