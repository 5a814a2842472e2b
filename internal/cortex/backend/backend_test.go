package backend

import (
	"context"
	"strings"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

func TestOpenEmbeddedDefaultPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	svc, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Ingest(ctx, cortex.IngestRequest{Collection: cortex.CollectionDocs, Documents: []cortex.Document{{ID: "a", Text: "etcd defragmentation runbook"}}}); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	svc, err = Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	q, err := svc.Query(ctx, cortex.QueryRequest{Query: "defrag etcd"})
	if err != nil || len(q.Hits) != 1 || len(q.Hits[0].Matched) != 2 {
		t.Fatalf("after reopen: %+v, %v", q, err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]Config{
		"nothing":          {},
		"unknown embedder": {DataDir: t.TempDir(), Embedder: "word2vec"},
		"openai no model":  {DataDir: t.TempDir(), Embedder: "openai", EmbedderURL: "http://127.0.0.1:1"},
		"bad reranker":     {DataDir: t.TempDir(), RerankerURL: "::"},
		"bad dsn":          {PostgresDSN: "postgres://u:hunter2@[::1"},
	} {
		_, err := Open(ctx, cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}
}
