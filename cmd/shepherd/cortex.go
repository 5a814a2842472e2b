package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cluster-shepherd/shepherd/internal/config"
	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/cortex/loader"
	"github.com/cluster-shepherd/shepherd/internal/server"
)

func init() {
	prev := extraCommands
	extraCommands = func() []*cobra.Command { return append(prev(), cortexCmd(), ingestCmd()) }
}

// cortexTarget is the Cortex a one-shot command (ingest, cortex report)
// talks to: the remote one at --cortex-url, else the store in --data-dir.
type cortexTarget struct {
	cf                      cortexFlags
	url, tokenFile, dataDir string
}

func (t *cortexTarget) register(fs *pflag.FlagSet) {
	fs.String(config.FileFlag, "", "YAML file of settings; keys are these flag names")
	fs.StringVar(&t.url, "cortex-url", "", "remote Cortex (shepherd cortex); default: the embedded store in --data-dir")
	fs.StringVar(&t.tokenFile, "cortex-token-file", "", "file holding the remote Cortex's bearer token (or SHEPHERD_CORTEX_TOKEN)")
	fs.StringVar(&t.dataDir, "data-dir", defaultDataDir(), "directory of the embedded store, when no --cortex-url")
	t.cf.register(fs)
}

// connect opens the target, logging warnings only; cluster is given to
// documents that name none.
func (t *cortexTarget) connect(ctx context.Context, cluster string) (cortexAPI, func(), error) {
	log, err := newLogger("warn")
	if err != nil {
		return nil, nil, err
	}
	return t.cf.connect(ctx, t.url, t.tokenFile, t.dataDir, cluster, log)
}

// cortexCmd serves Cortex alone, for several shepherds (clusters) sharing
// one memory.
func cortexCmd() *cobra.Command {
	var cf cortexFlags
	var listen, dataDir, tokenFile, logLevel string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "cortex",
		Short: "Serve Cortex, the cluster memory and risk scorer, as an HTTP JSON API",
		Long: `Serve Cortex's HTTP JSON API: POST /ingest, /query, /risk, /outcomes, /report,
the known-errors/solutions graph, /healthz and /metrics. Embedded by default (one
SQLite file in --data-dir, the built-in lexical embedder); PostgreSQL, Qdrant,
Ollama or an OpenAI-compatible embedder and a TEI reranker by flags.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := config.Resolve(c.Flags()); err != nil {
				return err
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			token, err := config.ReadSecret(tokenFile, "SHEPHERD_CORTEX_TOKEN")
			if err != nil {
				return fmt.Errorf("--auth-token-file: %w", err)
			}
			if _, _, err := net.SplitHostPort(listen); err != nil {
				// Not the token's fault: say what is wrong with the address.
				return fmt.Errorf("--listen %q: want host:port, e.g. 127.0.0.1:8090", listen)
			}
			if err := server.CheckListen(listen, token, insecure); err != nil {
				return fmt.Errorf("refusing to serve Cortex on %s without a token: it holds the cluster's incident history and scores writes. Set --auth-token-file or SHEPHERD_CORTEX_TOKEN, listen on 127.0.0.1, or pass --insecure-no-auth", listen)
			}
			svc, err := cf.open(c.Context(), dataDir, "", log)
			if err != nil {
				return err
			}
			defer svc.Close()
			h := cortex.NewHandler(svc)
			if token != "" {
				// Probes and metrics stay open; the data needs the token.
				h = openProbes(h, server.Bearer(token, h))
			}
			return server.Serve(c.Context(), h, server.Options{Listen: listen, Token: token, InsecureNoAuth: insecure, Log: log}, nil)
		},
	}
	fs := cmd.Flags()
	fs.String(config.FileFlag, "", "YAML file of settings; keys are these flag names")
	fs.StringVar(&listen, "listen", "127.0.0.1:8090", "address to serve the Cortex API on")
	fs.StringVar(&dataDir, "data-dir", defaultDataDir(), "directory of the embedded store (cortex.db)")
	fs.StringVar(&tokenFile, "auth-token-file", "", "file holding the bearer token clients must send (or SHEPHERD_CORTEX_TOKEN)")
	fs.BoolVar(&insecure, "insecure-no-auth", false, "allow a non-loopback --listen without a token")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cf.register(fs)
	cmd.AddCommand(cortexReportCmd())
	return cmd
}

// cortexReportCmd prints what one cluster went through, as markdown to paste
// into the PR that promotes its change.
func cortexReportCmd() *cobra.Command {
	var target cortexTarget
	var cluster string
	var since time.Duration
	var top int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "report --cluster NAME",
		Short: "Summarise one cluster's Warning events and action outcomes as a promotion report",
		Long: `Print a markdown promotion report of one cluster (e.g. a feature cluster
before its change goes to production): the documents Cortex holds of it in the
window, its most frequent Warning events, the outcomes of the actions taken in
it with the failed ones and incidents listed, and a one-line verdict. --json
prints the whole report as JSON instead.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := config.Resolve(c.Flags()); err != nil {
				return err
			}
			switch {
			case strings.TrimSpace(cluster) == "":
				return errors.New("--cluster is required: the cluster to report on, as its shepherd names it (serve --cluster-name)")
			case since <= 0:
				return fmt.Errorf("--since %s: want a positive duration, e.g. 168h for the last 7 days", since)
			case top < 1 || top > cortex.MaxReportTop:
				return fmt.Errorf("--top %d: want 1 to %d", top, cortex.MaxReportTop)
			}
			// A report only reads: a mistyped --data-dir must not quietly
			// create an empty store and report that nothing happened.
			if target.url == "" && target.cf.postgresDSNFile == "" && os.Getenv("SHEPHERD_CORTEX_POSTGRES_DSN") == "" {
				if _, err := os.Stat(filepath.Join(target.dataDir, "cortex.db")); err != nil {
					return fmt.Errorf("no embedded Cortex in --data-dir %s (cortex.db: %v); give the data directory shepherd serve uses, or --cortex-url", target.dataDir, errors.Unwrap(err))
				}
			}
			mem, done, err := target.connect(c.Context(), "")
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(c.Context(), 2*time.Minute)
			defer cancel()
			rep, err := mem.Report(ctx, cortex.ReportRequest{Cluster: cluster, Since: time.Now().Add(-since).UTC().Truncate(time.Second), Top: top})
			if err != nil {
				return fmt.Errorf("report on cluster %s: %w", cluster, err)
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			_, err = io.WriteString(c.OutOrStdout(), rep.Summary)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cluster, "cluster", "", "cluster to report on (required)")
	fs.DurationVar(&since, "since", 7*24*time.Hour, "how far back the report looks")
	fs.IntVar(&top, "top", cortex.DefaultReportTop, fmt.Sprintf("problems and failed actions listed, 1 to %d", cortex.MaxReportTop))
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of markdown")
	target.register(fs)
	return cmd
}

// ingestCmd loads a GitOps checkout or a folder of runbooks into Cortex.
func ingestCmd() *cobra.Command {
	var target cortexTarget
	var cluster string
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Load GitOps manifests or markdown runbooks into Cortex",
	}
	pf := cmd.PersistentFlags()
	target.register(pf)
	pf.StringVar(&cluster, "cluster-name", "default", "cluster the documents belong to")
	run := func(collection string, load func(dir, cluster string) (loader.Result, error)) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			if err := config.Resolve(c.Flags()); err != nil {
				return err
			}
			if target.url != "" {
				if err := target.cf.checkRemote(); err != nil {
					return err
				}
			}
			loaded, err := load(args[0], cluster)
			if err != nil {
				return err
			}
			if loaded.SkippedSecrets > 0 || loaded.SkippedSOPS > 0 {
				fmt.Fprintf(c.OutOrStdout(), "skipped %d Secret objects and %d SOPS-encrypted files: Cortex never stores them\n", loaded.SkippedSecrets, loaded.SkippedSOPS)
			}
			docs := loaded.Documents
			if len(docs) == 0 {
				return fmt.Errorf("nothing to ingest in %s", args[0])
			}
			mem, done, err := target.connect(c.Context(), cluster)
			if err != nil {
				return err
			}
			defer done()
			total := 0
			start := time.Now()
			for i := 0; i < len(docs); i += 500 {
				batch := docs[i:min(i+500, len(docs))]
				ctx, cancel := context.WithTimeout(c.Context(), 2*time.Minute)
				res, err := mem.Ingest(ctx, cortex.IngestRequest{Collection: collection, Documents: batch})
				cancel()
				if err != nil {
					return fmt.Errorf("ingest into %s after %d documents: %w", collection, total, err)
				}
				total += res.Upserted
			}
			fmt.Fprintf(c.OutOrStdout(), "ingested %d documents from %s into %s in %s\n", total, args[0], collection, time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
	cmd.AddCommand(&cobra.Command{
		Use: "manifests DIR", Short: "Load every Kubernetes object of a GitOps checkout (one document per object)",
		Args: cobra.ExactArgs(1), RunE: run(cortex.CollectionManifest, loader.LoadManifests),
	}, &cobra.Command{
		Use: "docs DIR", Short: "Load markdown runbooks (one document per section)",
		Args: cobra.ExactArgs(1), RunE: run(cortex.CollectionDocs, loader.LoadDocs),
	})
	return cmd
}

// openProbes serves /healthz and /metrics from open and the rest from
// guarded.
func openProbes(open, guarded http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			open.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}
