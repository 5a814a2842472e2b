package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
	"github.com/cluster-shepherd/shepherd/internal/cortex/sqlite"
	"github.com/cluster-shepherd/shepherd/internal/ingest"
	"github.com/cluster-shepherd/shepherd/internal/tools"
)

// openMemory connects to Cortex: remote with --cortex-url, else in process
// on the embedded store in --data-dir.
func (f *shepherdFlags) openMemory(ctx context.Context, d *tools.Deps) (cortex.Memory, func(), error) {
	if f.cortexURL != "" {
		return openRemoteCortex(f.cortexURL)
	}
	svc, err := openEmbeddedCortex(ctx, filepath.Join(f.dataDir, "cortex.db"), f.clusterName)
	if err != nil {
		return nil, nil, err
	}
	return svc, func() { svc.Close() }, nil
}

// openEmbeddedCortex opens the zero-dependency Cortex: one SQLite file and
// the built-in lexical embedder.
func openEmbeddedCortex(ctx context.Context, path, cluster string) (*cortex.Service, error) {
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("cortex store %s: %w", path, err)
	}
	svc, err := cortex.NewService(cortex.Deps{Documents: st, Vectors: st, Graph: st, Embedder: lexical.New(0)}, cortex.Options{DefaultCluster: cluster})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("cortex: %w", err)
	}
	return svc, nil
}

// startIngest feeds Warning events from the cache into Cortex in the
// background.
func (a *app) startIngest(ctx context.Context, mem cortex.Memory, cluster string) error {
	ing, err := ingest.NewEventIngester(mem, a.cache.EventInformer(), ingest.Options{Cluster: cluster, Log: a.log})
	if err != nil {
		return err
	}
	go ing.Run(ctx)
	return nil
}
