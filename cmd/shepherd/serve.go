package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cluster-shepherd/shepherd/internal/answer"
	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/config"
	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/server"
	"github.com/cluster-shepherd/shepherd/internal/tools"
)

// shepherdFlags are the settings shared by serve and stdio.
type shepherdFlags struct {
	kubeconfig, context string
	dataDir             string
	clusterName         string
	readOnly            bool
	enableTools         []string
	disableTools        []string
	maxBytes            int
	logLevel            string
	syncTimeout         time.Duration
	nodeAddrs           map[string]string
	cortexURL           string
	cortexTokenFile     string
	cortex              cortexFlags
	gate                gateFlags
	outside             outsideFlags
	http                bool   // serving HTTP: the admin API can be mounted
	authToken           string // the MCP bearer token, which the admin token must differ from
}

func (f *shepherdFlags) register(fs *pflag.FlagSet) {
	fs.String(config.FileFlag, "", "YAML file of settings; keys are these flag names (env SHEPHERD_CONFIG)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; empty means the in-cluster ServiceAccount")
	fs.StringVar(&f.context, "context", "", "kubeconfig context to use (default: the current context)")
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "directory for durable state: task queue, audit log, embedded Cortex")
	fs.StringVar(&f.clusterName, "cluster-name", "default", "name of this cluster, tagged on everything sent to Cortex")
	fs.BoolVar(&f.readOnly, "read-only", false, "offer no write tool at all")
	fs.StringSliceVar(&f.enableTools, "enable-tools", nil, "offer only these tools (comma-separated names)")
	fs.StringSliceVar(&f.disableTools, "disable-tools", nil, "never offer these tools (comma-separated names)")
	fs.IntVar(&f.maxBytes, "max-response-bytes", answer.DefaultMaxBytes, "byte cap on every tool answer")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (JSON logs on stderr)")
	fs.DurationVar(&f.syncTimeout, "sync-timeout", 2*time.Minute, "how long to wait for the first sync of the cluster cache")
	fs.StringToStringVar(&f.nodeAddrs, "node-address", nil, "SSH address overrides per node, e.g. worker-1=10.0.0.5")
	fs.StringVar(&f.cortexURL, "cortex-url", "", "URL of a remote Cortex; empty runs Cortex in process on --data-dir")
	fs.StringVar(&f.cortexTokenFile, "cortex-token-file", "", "file holding the bearer token of the remote Cortex (or SHEPHERD_CORTEX_TOKEN)")
	f.cortex.register(fs)
	f.gate.register(fs)
	f.outside.register(fs)
}

func defaultDataDir() string {
	if d, err := os.UserHomeDir(); err == nil && d != "" && d != "/" {
		return filepath.Join(d, ".local", "share", "cluster-shepherd")
	}
	return "/var/lib/shepherd"
}

// validate checks what can be checked before touching the cluster.
func (f *shepherdFlags) validate() error {
	if f.maxBytes < 1024 {
		return fmt.Errorf("--max-response-bytes %d is too small (at least 1024)", f.maxBytes)
	}
	if f.syncTimeout <= 0 {
		return fmt.Errorf("--sync-timeout must be positive")
	}
	if strings.TrimSpace(f.clusterName) == "" {
		return fmt.Errorf("--cluster-name must not be empty")
	}
	// It is part of every Cortex document id, which is capped at 512 bytes.
	if len(f.clusterName) > 253 || strings.ContainsFunc(f.clusterName, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
	}) {
		return fmt.Errorf("--cluster-name: want at most 253 letters, digits, '-', '.' or '_', got %d bytes %.64q", len(f.clusterName), f.clusterName)
	}
	if f.dataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	// stdio runs no admin API, so with out-of-band approval only a shepherd
	// serve sharing the queue can approve; with the per-process file queue
	// nothing ever could.
	if !f.http && f.gate.approval == guard.ApprovalOutOfBand && f.gate.queueDSNFile == "" && os.Getenv("SHEPHERD_QUEUE_DSN") == "" {
		return fmt.Errorf("--approval=out-of-band: stdio serves no admin API, so nothing could approve its queued tasks; use --approval=chat, or share a PostgreSQL queue (--queue-dsn-file) with a shepherd serve whose admin API `shepherd tasks` reaches")
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	probe, err := os.CreateTemp(f.dataDir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("--data-dir %s is not writable: %w", f.dataDir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	_, err = tools.Select(tools.All(), f.readOnly, f.enableTools, f.disableTools)
	return err
}

// app is a running shepherd minus its transport.
type app struct {
	log     *slog.Logger
	cache   *cluster.Cache
	server  *mcp.Server
	reg     *prometheus.Registry
	routes  map[string]http.Handler
	cleanup []func()
}

func (a *app) close() {
	for i := len(a.cleanup) - 1; i >= 0; i-- {
		a.cleanup[i]()
	}
}

// build connects to the cluster and assembles the MCP server. The cache
// syncs in the background when wait is false (HTTP: probes must answer
// meanwhile), and before returning when wait is true (stdio).
func (f *shepherdFlags) build(ctx context.Context, wait bool) (*app, error) {
	log, err := newLogger(f.logLevel)
	if err != nil {
		return nil, err
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	selected, _ := tools.Select(tools.All(), f.readOnly, f.enableTools, f.disableTools)
	cfg, err := cluster.RESTConfig(f.kubeconfig, f.context)
	if err != nil {
		return nil, err
	}
	client, err := cluster.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	a := &app{log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.cache = cluster.NewCache(client, log)
	deps := &tools.Deps{
		Cache: a.cache, Cluster: f.clusterName, MaxBytes: f.maxBytes, NodeAddrs: f.nodeAddrs,
		Log: log, Metrics: tools.NewMetrics(a.reg),
	}
	if err := f.wireExtras(ctx, a, deps); err != nil {
		a.close()
		return nil, err
	}
	start := func() error {
		if err := a.cache.Start(ctx, f.syncTimeout); err != nil {
			return err
		}
		log.Info("cluster cache synced")
		return nil
	}
	if wait {
		if err := start(); err != nil {
			a.close()
			return nil, err
		}
	} else {
		go func() {
			if err := start(); err != nil && ctx.Err() == nil {
				log.Error("cluster cache", "err", err)
			}
		}()
	}
	a.server = tools.NewServer(deps, selected, version)
	return a, nil
}

func serveCmd() *cobra.Command {
	f := shepherdFlags{http: true}
	var listen, tokenFile string
	var insecure bool
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the MCP tools over HTTP: Streamable HTTP at /mcp, legacy SSE at /sse",
		Long: `Serve the MCP tools over HTTP on one listener: Streamable HTTP at /mcp, the
legacy HTTP+SSE transport at /sse, and /healthz, /readyz and Prometheus /metrics.

Every flag can also be set as SHEPHERD_<FLAG> in the environment (dashes as
underscores) or as a key in the --config YAML file; the command line wins,
then the environment, then the file. The bearer token comes from
--auth-token-file or SHEPHERD_AUTH_TOKEN, never from the command line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Resolve(cmd.Flags()); err != nil {
				return err
			}
			token, err := config.ReadSecret(tokenFile, "SHEPHERD_AUTH_TOKEN")
			if err != nil {
				return fmt.Errorf("--auth-token-file: %w", err)
			}
			if err := server.CheckListen(listen, token, insecure); err != nil {
				return err
			}
			if idle < 0 {
				return fmt.Errorf("--session-idle-timeout must not be negative (0 keeps sessions forever)")
			}
			f.authToken = token
			ctx := cmd.Context()
			a, err := f.build(ctx, false)
			if err != nil {
				return err
			}
			defer a.close()
			h := server.Handler(a.server, server.Options{
				Listen: listen, Token: token, InsecureNoAuth: insecure,
				Ready: a.cache.Synced, Gatherer: a.reg, Log: a.log, Extra: a.extraRoutes(), SessionIdleTimeout: idle, TokenFile: tokenFile,
			})
			return server.Serve(ctx, h, server.Options{Listen: listen, Token: token, InsecureNoAuth: insecure, Log: a.log}, nil)
		},
	}
	fs := cmd.Flags()
	f.register(fs)
	fs.StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve HTTP on")
	fs.StringVar(&tokenFile, "auth-token-file", "", "file holding the bearer token clients must send (or set SHEPHERD_AUTH_TOKEN)")
	fs.DurationVar(&idle, "session-idle-timeout", time.Hour, "close Streamable HTTP sessions idle this long (clients start a new one); 0: never")
	fs.BoolVar(&insecure, "insecure-no-auth", false, "allow a non-loopback --listen without a bearer token (only behind an authenticating proxy)")
	return cmd
}

// extraRoutes are HTTP routes later features add (the admin API).
func (a *app) extraRoutes() map[string]http.Handler { return a.routes }

func stdioCmd() *cobra.Command {
	var f shepherdFlags
	cmd := &cobra.Command{
		Use:   "stdio",
		Short: "Serve the MCP tools over stdin/stdout, for desktop clients",
		Long: `Serve the same MCP tools over stdin/stdout, for desktop clients such as
Claude Desktop. Logs go to stderr. Flags, environment and --config as for serve.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Resolve(cmd.Flags()); err != nil {
				return err
			}
			ctx := cmd.Context()
			a, err := f.build(ctx, true)
			if err != nil {
				return err
			}
			defer a.close()
			err = a.server.Run(ctx, &mcp.StdioTransport{})
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	f.register(cmd.Flags())
	return cmd
}
