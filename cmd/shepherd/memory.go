package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/cluster-shepherd/shepherd/internal/config"
	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/backend"
	"github.com/cluster-shepherd/shepherd/internal/ingest"
	"github.com/cluster-shepherd/shepherd/internal/tools"
)

// cortexFlags choose Cortex's backends; `shepherd cortex` and an in-process
// Cortex in `shepherd serve` share them.
type cortexFlags struct {
	postgresDSNFile  string
	qdrantURL        string
	qdrantKeyFile    string
	qdrantCollection string
	embedder         string
	embedderURL      string
	embedderModel    string
	embedderKeyFile  string
	rerankerURL      string
	reviewAt         float64
	rejectAt         float64
	rrfK             int
	denseWeight      float64
	fs               *pflag.FlagSet // where they were registered, to ask which were set
}

func (c *cortexFlags) register(fs *pflag.FlagSet) {
	c.fs = fs
	fs.StringVar(&c.postgresDSNFile, "cortex-postgres-dsn-file", "", "file holding a PostgreSQL DSN for Cortex's documents, graph and (without Qdrant) vectors (or SHEPHERD_CORTEX_POSTGRES_DSN); default: one SQLite file in --data-dir")
	fs.StringVar(&c.qdrantURL, "qdrant-url", "", "Qdrant gRPC address for Cortex's vectors, e.g. qdrant:6334")
	fs.StringVar(&c.qdrantKeyFile, "qdrant-api-key-file", "", "file holding the Qdrant API key (or SHEPHERD_QDRANT_API_KEY)")
	fs.StringVar(&c.qdrantCollection, "qdrant-collection", "cortex", "Qdrant collection")
	fs.StringVar(&c.embedder, "embedder", "lexical", "lexical (built in, no model: hashed words and character n-grams), ollama or openai")
	fs.StringVar(&c.embedderURL, "embedder-url", "", "Ollama or OpenAI-compatible base URL, e.g. http://ollama:11434")
	fs.StringVar(&c.embedderModel, "embedder-model", "", "embedding model (default nomic-embed-text for ollama)")
	fs.StringVar(&c.embedderKeyFile, "embedder-api-key-file", "", "file holding the embedding API key (or SHEPHERD_EMBEDDER_API_KEY)")
	fs.StringVar(&c.rerankerURL, "reranker-url", "", "TEI-compatible /rerank endpoint (bge-reranker-base); empty: no rerank step")
	fs.Float64Var(&c.reviewAt, "risk-review-at", cortex.DefaultThresholds.Review, "risk score from which an action needs review")
	fs.Float64Var(&c.rejectAt, "risk-reject-at", cortex.DefaultThresholds.Reject, "risk score from which an action is rejected")
	fs.IntVar(&c.rrfK, "rrf-k", 0, "reciprocal rank fusion constant; 0: the embedder's choice (5 for lexical, else 60)")
	fs.Float64Var(&c.denseWeight, "dense-weight", 0, "weight of dense results against BM25's 1 in fusion; 0: the embedder's choice (0.3 for lexical, else 1)")
}

// checkRemote refuses these flags next to --cortex-url: they configure an
// in-process Cortex, so silently ignoring them would leave the operator
// believing, say, that Qdrant or the reranker is in use.
func (c *cortexFlags) checkRemote() error {
	var set []string
	c.fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed && isCortexFlag(f.Name) {
			set = append(set, "--"+f.Name)
		}
	})
	if len(set) == 0 {
		return nil
	}
	return fmt.Errorf("%s configure an in-process Cortex and belong to the remote Cortex (shepherd cortex) when --cortex-url is set; remove them here", strings.Join(set, ", "))
}

func isCortexFlag(name string) bool {
	switch name {
	case "cortex-postgres-dsn-file", "qdrant-url", "qdrant-api-key-file", "qdrant-collection",
		"reranker-url", "risk-review-at", "risk-reject-at", "rrf-k", "dense-weight":
		return true
	}
	return strings.HasPrefix(name, "embedder")
}

// open builds the Cortex service these flags describe; log receives its
// warnings (a failed dense search or rerank).
func (c *cortexFlags) open(ctx context.Context, dataDir, cluster string, log *slog.Logger) (*cortex.Service, error) {
	if !(0 < c.reviewAt && c.reviewAt < c.rejectAt && c.rejectAt <= 1) {
		return nil, fmt.Errorf("risk thresholds: want 0 < --risk-review-at < --risk-reject-at <= 1, got %g and %g", c.reviewAt, c.rejectAt)
	}
	if c.rrfK < 0 || c.denseWeight < 0 {
		return nil, fmt.Errorf("fusion: --rrf-k and --dense-weight must not be negative, got %d and %g", c.rrfK, c.denseWeight)
	}
	dsn, err := config.ReadSecret(c.postgresDSNFile, "SHEPHERD_CORTEX_POSTGRES_DSN")
	if err != nil {
		return nil, fmt.Errorf("--cortex-postgres-dsn-file: %w", err)
	}
	qkey, err := config.ReadSecret(c.qdrantKeyFile, "SHEPHERD_QDRANT_API_KEY")
	if err != nil {
		return nil, fmt.Errorf("--qdrant-api-key-file: %w", err)
	}
	ekey, err := config.ReadSecret(c.embedderKeyFile, "SHEPHERD_EMBEDDER_API_KEY")
	if err != nil {
		return nil, fmt.Errorf("--embedder-api-key-file: %w", err)
	}
	return backend.Open(ctx, backend.Config{
		DataDir: dataDir, PostgresDSN: dsn,
		QdrantAddr: c.qdrantURL, QdrantAPIKey: qkey, QdrantCollection: c.qdrantCollection,
		Embedder: c.embedder, EmbedderURL: c.embedderURL, EmbedderModel: c.embedderModel, EmbedderAPIKey: ekey,
		RerankerURL: c.rerankerURL,
		Options: cortex.Options{DefaultCluster: cluster, Thresholds: cortex.Thresholds{Review: c.reviewAt, Reject: c.rejectAt},
			RRFK: c.rrfK, DenseWeight: c.denseWeight, Logger: log},
	})
}

// openMemory connects to Cortex: remote with --cortex-url, else in process.
func (f *shepherdFlags) openMemory(ctx context.Context, d *tools.Deps) (cortex.Memory, func(), error) {
	return f.cortex.connect(ctx, f.cortexURL, f.cortexTokenFile, f.dataDir, f.clusterName, d.Log)
}

// cortexAPI is what shepherd's commands use of Cortex; the in-process
// Service and the HTTP Client both have it.
type cortexAPI interface {
	cortex.Memory
	Report(ctx context.Context, req cortex.ReportRequest) (cortex.ReportResponse, error)
}

var (
	_ cortexAPI = (*cortex.Service)(nil)
	_ cortexAPI = (*cortex.Client)(nil)
)

// connect reaches the remote Cortex at url when given, else opens the one
// these flags describe in dataDir (cluster is given to documents that name
// none); done releases it.
func (c *cortexFlags) connect(ctx context.Context, url, tokenFile, dataDir, cluster string, log *slog.Logger) (api cortexAPI, done func(), err error) {
	if url != "" {
		if err := c.checkRemote(); err != nil {
			return nil, nil, err
		}
		cl, err := remoteCortex(url, tokenFile)
		if err != nil {
			return nil, nil, err
		}
		return cl, func() {}, nil
	}
	svc, err := c.open(ctx, dataDir, cluster, log)
	if err != nil {
		return nil, nil, err
	}
	return svc, func() { svc.Close() }, nil
}

// remoteCortex is a client of `shepherd cortex`, with its bearer token.
func remoteCortex(url, tokenFile string) (*cortex.Client, error) {
	tok, err := config.ReadSecret(tokenFile, "SHEPHERD_CORTEX_TOKEN")
	if err != nil {
		return nil, fmt.Errorf("--cortex-token-file: %w", err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: bearerTransport{token: tok, next: http.DefaultTransport}}
	return cortex.NewClient(url, hc)
}

type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

// startIngest feeds Warning events from the cache into Cortex in the
// background.
func (a *app) startIngest(ctx context.Context, mem cortex.Memory, cluster string) error {
	ing, err := ingest.NewEventIngester(mem, a.cache.EventInformer(), ingest.Options{Cluster: cluster, Log: a.log})
	if err != nil {
		return err
	}
	a.reg.MustRegister(ingestCollector{ing})
	go ing.Run(ctx)
	return nil
}

// ingestCollector exposes the event ingester's counters: a growing pending
// queue or failures mean Cortex is not getting the cluster's history.
type ingestCollector struct{ ing *ingest.EventIngester }

var (
	ingestSent    = prometheus.NewDesc("shepherd_ingest_events_sent_total", "Warning-event documents Cortex accepted.", nil, nil)
	ingestFailed  = prometheus.NewDesc("shepherd_ingest_failures_total", "Ingest batches that failed (Cortex down or slow); they are retried.", nil, nil)
	ingestDropped = prometheus.NewDesc("shepherd_ingest_events_dropped_total", "Event documents dropped because the local queue was full.", nil, nil)
	ingestRefused = prometheus.NewDesc("shepherd_ingest_events_refused_total", "Event documents Cortex refused as invalid; dropped.", nil, nil)
	ingestPending = prometheus.NewDesc("shepherd_ingest_events_pending", "Event documents queued for Cortex.", nil, nil)
)

func (c ingestCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ingestSent, ingestFailed, ingestDropped, ingestRefused, ingestPending} {
		ch <- d
	}
}

func (c ingestCollector) Collect(ch chan<- prometheus.Metric) {
	sent, failed, dropped, pending := c.ing.Stats()
	ch <- prometheus.MustNewConstMetric(ingestSent, prometheus.CounterValue, float64(sent))
	ch <- prometheus.MustNewConstMetric(ingestFailed, prometheus.CounterValue, float64(failed))
	ch <- prometheus.MustNewConstMetric(ingestDropped, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(ingestRefused, prometheus.CounterValue, float64(c.ing.Refused()))
	ch <- prometheus.MustNewConstMetric(ingestPending, prometheus.GaugeValue, float64(pending))
}
