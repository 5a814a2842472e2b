package cortex

import (
	"context"
	"time"
)

// Scored names one document and how well it matched.
type Scored struct {
	Collection string
	ID         string
	Score      float64
}

// Filter narrows a search to collections (all when empty) and one cluster
// (all when empty).
type Filter struct {
	Collections []string
	Cluster     string
}

// DocumentStore keeps documents and answers keyword (BM25) search. Upsert is
// idempotent by (collection, id) and all-or-nothing for one call.
type DocumentStore interface {
	Upsert(ctx context.Context, docs []Document) error
	Get(ctx context.Context, collection, id string) (Document, bool, error)
	Keyword(ctx context.Context, query string, f Filter, k int) ([]Scored, error)
	// Recent returns at most limit documents of one collection and cluster
	// (matched exactly: "" is the documents without one) updated at or
	// after since, newest first, ties by id; a negative limit is an error.
	Recent(ctx context.Context, collection, cluster string, since time.Time, limit int) ([]Document, error)
	Count(ctx context.Context, collection string) (int, error)
	Close() error
}

// VectorItem is one document's embedding.
type VectorItem struct {
	Collection string
	ID         string
	Cluster    string
	Vector     []float32
}

// VectorIndex keeps one vector per document and returns the nearest by
// cosine similarity (Score in [-1, 1], higher is closer).
type VectorIndex interface {
	UpsertVectors(ctx context.Context, items []VectorItem) error
	Search(ctx context.Context, vector []float32, f Filter, k int) ([]Scored, error)
	Close() error
}

// KnownError is a recurring error pattern seen in the cluster.
type KnownError struct {
	ID        string    `json:"id"`
	Pattern   string    `json:"pattern"`
	Summary   string    `json:"summary,omitempty"`
	Cluster   string    `json:"cluster,omitempty"`
	Incidents []string  `json:"incidents,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Solution is a fix tried for a known error; Verified means it worked.
type Solution struct {
	ID          string    `json:"id"`
	Description string    `json:"description"`
	Verified    bool      `json:"verified"`
	ErrorIDs    []string  `json:"error_ids,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// GraphStore keeps the known-error ↔ solution graph and the incidents where
// each error showed.
type GraphStore interface {
	PutKnownError(ctx context.Context, e KnownError) (KnownError, error)
	ListKnownErrors(ctx context.Context) ([]KnownError, error)
	PutSolution(ctx context.Context, s Solution) (Solution, error)
	Link(ctx context.Context, errorID, solutionID string) error
	SetVerified(ctx context.Context, solutionID string, verified bool) error
	SolutionsFor(ctx context.Context, errorID string) ([]Solution, error)
	AddIncident(ctx context.Context, errorID, documentID string) error
}

// Embedder turns text into vectors. Documents and queries are embedded
// separately because some models (nomic-embed-text) want different prefixes.
type Embedder interface {
	EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error)
	EmbedQuery(ctx context.Context, text string) ([]float32, error)
	Name() string
}

// FusionHinter is implemented by an embedder that knows how its vectors
// should be weighed against BM25 in reciprocal rank fusion: k is the RRF
// constant, denseWeight the dense list's weight (BM25's is 1). Options
// override the hint; embedders without one get k=60 and weight 1.
type FusionHinter interface {
	FusionHint() (k int, denseWeight float64)
}

// Reranker re-scores candidate texts against a query; higher is better.
type Reranker interface {
	Rerank(ctx context.Context, query string, texts []string) ([]float64, error)
}

// EmbedInBatches embeds texts through embed, batch texts a call, each with
// prefix, for the embedders that call a model server.
func EmbedInBatches(ctx context.Context, texts []string, batch int, prefix string,
	embed func(context.Context, []string) ([][]float32, error)) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	batch = max(1, batch)
	for start := 0; start < len(texts); start += batch {
		chunk := texts[start:min(start+batch, len(texts))]
		in := make([]string, len(chunk))
		for i, t := range chunk {
			in[i] = prefix + t
		}
		vecs, err := embed(ctx, in)
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}
