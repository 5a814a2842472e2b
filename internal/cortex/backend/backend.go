// Package backend wires a cortex.Service from configuration: the embedded
// SQLite file by default, PostgreSQL and/or Qdrant when named, and the
// embedder and reranker of choice. It lives apart from package cortex
// because the backends import cortex.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
	"github.com/cluster-shepherd/shepherd/internal/cortex/ollama"
	"github.com/cluster-shepherd/shepherd/internal/cortex/openai"
	"github.com/cluster-shepherd/shepherd/internal/cortex/postgres"
	"github.com/cluster-shepherd/shepherd/internal/cortex/qdrant"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
	"github.com/cluster-shepherd/shepherd/internal/cortex/tei"
)

// Embedder names.
const (
	EmbedderLexical = "lexical"
	EmbedderOllama  = "ollama"
	EmbedderOpenAI  = "openai"
)

// Config chooses Cortex's parts. The zero value plus DataDir is the embedded
// default: one SQLite file, the lexical embedder, no reranker.
type Config struct {
	// DataDir holds cortex.db when no PostgreSQL DSN is given.
	DataDir string
	// PostgresDSN puts documents, keyword search and the graph (and vectors,
	// unless QdrantAddr is set) in PostgreSQL.
	PostgresDSN string
	// QdrantAddr puts vectors in Qdrant (gRPC, "host:6334").
	QdrantAddr       string
	QdrantAPIKey     string
	QdrantCollection string
	// Embedder is lexical (default), ollama or openai.
	Embedder       string
	EmbedderURL    string
	EmbedderModel  string
	EmbedderAPIKey string
	// LexicalDim sizes the lexical embedder (default 256).
	LexicalDim int
	// RerankerURL is a TEI /rerank endpoint; empty means no rerank step.
	RerankerURL string
	Options     cortex.Options
}

// Open builds the Service described by cfg; Service.Close releases it all.
func Open(ctx context.Context, cfg Config) (*cortex.Service, error) {
	emb, err := NewEmbedder(cfg)
	if err != nil {
		return nil, err
	}
	var rr cortex.Reranker
	if cfg.RerankerURL != "" {
		if rr, err = tei.New(cfg.RerankerURL, nil); err != nil {
			return nil, err
		}
	}
	var (
		docs    cortex.DocumentStore
		vecs    cortex.VectorIndex
		graph   cortex.GraphStore
		closers []io.Closer
	)
	fail := func(err error) (*cortex.Service, error) {
		for _, c := range closers {
			_ = c.Close()
		}
		return nil, err
	}
	switch {
	case cfg.PostgresDSN != "":
		pg, err := postgres.Open(ctx, cfg.PostgresDSN)
		if err != nil {
			return nil, err
		}
		closers = append(closers, pg)
		docs, vecs, graph = pg, pg, pg
	default:
		if cfg.DataDir == "" {
			return nil, errors.New("cortex: no data directory and no PostgreSQL DSN")
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("cortex: data directory: %w", err)
		}
		st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "cortex.db"))
		if err != nil {
			return nil, err
		}
		closers = append(closers, st)
		docs, vecs, graph = st, st, st
	}
	if cfg.QdrantAddr != "" {
		q, err := qdrant.Open(ctx, cfg.QdrantAddr, qdrant.Options{APIKey: cfg.QdrantAPIKey, Collection: cfg.QdrantCollection})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, q)
		vecs = q
	}
	svc, err := cortex.NewService(cortex.Deps{Documents: docs, Vectors: vecs, Graph: graph, Embedder: emb, Reranker: rr}, cfg.Options)
	if err != nil {
		return fail(err)
	}
	return svc, nil
}

// NewEmbedder returns the embedder cfg names.
func NewEmbedder(cfg Config) (cortex.Embedder, error) {
	switch cfg.Embedder {
	case "", EmbedderLexical:
		return lexical.New(cfg.LexicalDim), nil
	case EmbedderOllama:
		url := cfg.EmbedderURL
		if url == "" {
			url = "http://127.0.0.1:11434"
		}
		return ollama.New(url, cfg.EmbedderModel, nil)
	case EmbedderOpenAI:
		return openai.New(cfg.EmbedderURL, cfg.EmbedderModel, cfg.EmbedderAPIKey, nil)
	}
	return nil, fmt.Errorf("cortex: unknown embedder %q (want lexical, ollama or openai)", cfg.Embedder)
}
