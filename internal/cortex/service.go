package cortex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Deps are the parts a Service is built from; Reranker may be nil (no
// rerank step). Documents and Vectors may be one value.
type Deps struct {
	Documents DocumentStore
	Vectors   VectorIndex
	Graph     GraphStore
	Embedder  Embedder
	Reranker  Reranker
	// Closers are closed by Service.Close after the stores, e.g. a client
	// connection shared by several of them.
	Closers []io.Closer
}

// Thresholds split a risk score into recommendations: below Review is auto,
// at or above Reject is reject, review in between.
type Thresholds struct {
	Review float64 `json:"review"`
	Reject float64 `json:"reject"`
}

// DefaultThresholds are auto < 0.3 ≤ review < 0.85 ≤ reject.
var DefaultThresholds = Thresholds{Review: 0.3, Reject: 0.85}

// Options tune a Service; the zero value gives the documented defaults.
type Options struct {
	Thresholds Thresholds
	// ContextBudget caps merged_context in bytes (default 4000).
	ContextBudget int
	// Clock is the time source for stamps and recency (default time.Now).
	Clock func() time.Time
	// MaxDocumentBytes caps one document's text (default 64 KiB).
	MaxDocumentBytes int
	// MaxBatch caps the documents of one ingest (default 5000).
	MaxBatch int
	// Candidates is how many hits each retriever contributes to fusion
	// (default 50).
	Candidates int
	// RRFK is the reciprocal rank fusion constant (default: the embedder's
	// FusionHint, else 60).
	RRFK int
	// DenseWeight is the weight of the dense list in fusion, BM25's being 1
	// (default: the embedder's FusionHint, else 1).
	DenseWeight float64
	// RerankDepth is how many fused candidates the reranker sees (default 20).
	RerankDepth int
	// HalfLife is how fast a past incident's weight in risk decays (default
	// 90 days).
	HalfLife time.Duration
	// DefaultCluster is given to documents that name none (default: none).
	DefaultCluster string
	Logger         *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Thresholds == (Thresholds{}) {
		o.Thresholds = DefaultThresholds
	}
	if o.ContextBudget <= 0 {
		o.ContextBudget = 4000
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.MaxDocumentBytes <= 0 {
		o.MaxDocumentBytes = 64 << 10
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 5000
	}
	if o.Candidates <= 0 {
		o.Candidates = 50
	}
	if o.RerankDepth <= 0 {
		o.RerankDepth = 20
	}
	if o.HalfLife <= 0 {
		o.HalfLife = 90 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Service is Cortex in process: it implements Memory over any backend.
type Service struct {
	docs     DocumentStore
	vecs     VectorIndex
	graph    GraphStore
	embedder Embedder
	reranker Reranker
	closers  []io.Closer
	opts     Options
	closeMu  sync.Once
}

var _ Memory = (*Service)(nil)

// AtomicUpserter is implemented by a backend that keeps documents and
// vectors in one database, so an ingest writes both or neither.
type AtomicUpserter interface {
	UpsertWithVectors(ctx context.Context, docs []Document, items []VectorItem) error
}

// NewService builds a Service; Documents, Vectors, Graph and Embedder are
// required.
func NewService(d Deps, o Options) (*Service, error) {
	switch {
	case d.Documents == nil:
		return nil, errors.New("cortex: no document store")
	case d.Vectors == nil:
		return nil, errors.New("cortex: no vector index")
	case d.Graph == nil:
		return nil, errors.New("cortex: no graph store")
	case d.Embedder == nil:
		return nil, errors.New("cortex: no embedder")
	}
	if o.DenseWeight < 0 {
		return nil, fmt.Errorf("cortex: dense weight must not be negative, got %g", o.DenseWeight)
	}
	k, w := 60, 1.0
	if h, ok := d.Embedder.(FusionHinter); ok {
		k, w = h.FusionHint()
	}
	if o.RRFK <= 0 {
		o.RRFK = k
	}
	if o.DenseWeight == 0 {
		o.DenseWeight = w
	}
	return &Service{docs: d.Documents, vecs: d.Vectors, graph: d.Graph, embedder: d.Embedder,
		reranker: d.Reranker, closers: d.Closers, opts: o.withDefaults()}, nil
}

// Options returns the effective options (defaults filled in).
func (s *Service) Options() Options { return s.opts }

// EmbedderName names the embedder, for /healthz.
func (s *Service) EmbedderName() string { return s.embedder.Name() }

// Close closes every store (each once) and the extra closers.
func (s *Service) Close() error {
	var errs []error
	s.closeMu.Do(func() {
		seen := map[any]bool{}
		for _, c := range []any{s.docs, s.vecs, s.graph} {
			cl, ok := c.(io.Closer)
			if !ok || seen[c] {
				continue
			}
			seen[c] = true
			errs = append(errs, cl.Close())
		}
		for _, c := range s.closers {
			errs = append(errs, c.Close())
		}
	})
	return errors.Join(errs...)
}

// Count returns how many documents a collection holds (all when empty).
func (s *Service) Count(ctx context.Context, collection string) (int, error) {
	if collection != "" && !validCollection(collection) {
		return 0, invalid("unknown collection %q (want one of %s)", collection, strings.Join(Collections, ", "))
	}
	n, err := s.docs.Count(ctx, collection)
	if err != nil {
		return 0, unavailable("count: %w", err)
	}
	return n, nil
}

func validCollection(c string) bool { return slices.Contains(Collections, c) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, fmt.Errorf(format, args...))
}

// Ingest validates, embeds and upserts documents into one collection. A batch
// is checked whole before anything is written, and a failing embedder or
// store leaves nothing new behind (all-or-nothing where the backend keeps
// documents and vectors together; otherwise a retry of the same idempotent
// batch repairs a half-done one).
func (s *Service) Ingest(ctx context.Context, req IngestRequest) (IngestResponse, error) {
	if !validCollection(req.Collection) {
		return IngestResponse{}, invalid("unknown collection %q (want one of %s)", req.Collection, strings.Join(Collections, ", "))
	}
	if len(req.Documents) == 0 {
		return IngestResponse{}, invalid("no documents to ingest")
	}
	if len(req.Documents) > s.opts.MaxBatch {
		return IngestResponse{}, invalid("%d documents in one ingest, the limit is %d", len(req.Documents), s.opts.MaxBatch)
	}
	docs := make([]Document, 0, len(req.Documents))
	pos := map[string]int{}
	for i, d := range req.Documents {
		if err := s.prepare(&d, req.Collection); err != nil {
			return IngestResponse{}, invalid("document %d: %s", i, err)
		}
		// A batch naming one id twice keeps the last, as two ingests would.
		if j, ok := pos[d.ID]; ok {
			docs[j] = d
			continue
		}
		pos[d.ID] = len(docs)
		docs = append(docs, d)
	}
	if err := s.write(ctx, docs); err != nil {
		return IngestResponse{}, err
	}
	return IngestResponse{Upserted: len(docs)}, nil
}

func (s *Service) write(ctx context.Context, docs []Document) error {
	texts := make([]string, len(docs))
	for i, d := range docs {
		texts[i] = d.Text
	}
	vecs, err := s.embedder.EmbedDocuments(ctx, texts)
	if err != nil {
		return unavailable("embed %d documents with %s: %w", len(docs), s.embedder.Name(), err)
	}
	if len(vecs) != len(docs) {
		return unavailable("embedder %s returned %d vectors for %d documents", s.embedder.Name(), len(vecs), len(docs))
	}
	items := make([]VectorItem, len(docs))
	for i, d := range docs {
		items[i] = VectorItem{Collection: d.Collection, ID: d.ID, Cluster: d.Cluster, Vector: vecs[i]}
	}
	if a, ok := s.docs.(AtomicUpserter); ok && same(s.docs, s.vecs) {
		if err := a.UpsertWithVectors(ctx, docs, items); err != nil {
			return unavailable("store %d documents: %w", len(docs), err)
		}
		return nil
	}
	// Vectors first: a vector without its document is never shown (load
	// skips it), so a failure between the two writes leaves nothing a query
	// can see, and the retry of the same idempotent batch completes it.
	if err := s.vecs.UpsertVectors(ctx, items); err != nil {
		return unavailable("store %d vectors: %w", len(items), err)
	}
	if err := s.docs.Upsert(ctx, docs); err != nil {
		return unavailable("store %d documents (their vectors are stored but unused; retry the ingest): %w", len(docs), err)
	}
	return nil
}

func same(a, b any) (eq bool) {
	defer func() {
		if recover() != nil {
			eq = false
		}
	}()
	return a == b
}

func (s *Service) prepare(d *Document, collection string) error {
	if d.Collection != "" && d.Collection != collection {
		return fmt.Errorf("id %q names collection %q inside an ingest into %q", d.ID, d.Collection, collection)
	}
	d.Collection = collection
	if strings.TrimSpace(d.ID) == "" {
		return errors.New("id is empty")
	}
	if len(d.ID) > 512 {
		return fmt.Errorf("id is longer than 512 bytes")
	}
	if strings.TrimSpace(d.Text) == "" {
		return fmt.Errorf("id %q: text is empty", d.ID)
	}
	if len(d.Text) > s.opts.MaxDocumentBytes {
		return fmt.Errorf("id %q: text is %d bytes, the limit is %d (split it)", d.ID, len(d.Text), s.opts.MaxDocumentBytes)
	}
	if d.Cluster == "" {
		d.Cluster = d.Metadata["cluster"]
	}
	if d.Cluster == "" {
		d.Cluster = s.opts.DefaultCluster
	}
	if d.Cluster == "" && collection == CollectionEvents {
		return fmt.Errorf("id %q: an event must name its cluster (field cluster or metadata.cluster)", d.ID)
	}
	if d.Metadata != nil && d.Cluster != "" {
		if c, ok := d.Metadata["cluster"]; ok && c != d.Cluster {
			return fmt.Errorf("id %q: cluster %q and metadata.cluster %q disagree", d.ID, d.Cluster, c)
		}
	}
	metaBytes := 0
	for k, v := range d.Metadata {
		metaBytes += len(k) + len(v)
		if !utf8.ValidString(k) || !utf8.ValidString(v) || strings.ContainsRune(k+v, 0) {
			return fmt.Errorf("id %q: metadata %q is not valid text", d.ID, k)
		}
	}
	if metaBytes > 8<<10 {
		return fmt.Errorf("id %q: metadata is %d bytes, the limit is 8192", d.ID, metaBytes)
	}
	for what, v := range map[string]string{"id": d.ID, "text": d.Text, "cluster": d.Cluster} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return fmt.Errorf("id %q: %s is not valid UTF-8 text", d.ID, what)
		}
	}
	// What the store would refuse is refused here, as the caller's mistake,
	// before anything is written.
	if err := CheckDocument(*d); err != nil {
		return fmt.Errorf("id %q: %w", d.ID, err)
	}
	return nil
}
