package main

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/cluster-shepherd/shepherd/internal/config"
	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/guard/pgqueue"
	"github.com/cluster-shepherd/shepherd/internal/tools"
)

// gateFlags configure the risk gate, the task queue and the audit log.
type gateFlags struct {
	approval        string
	assessmentTTL   time.Duration
	taskTTL         time.Duration
	riskTimeout     time.Duration
	selfNamespace   string
	protectedNS     []string
	protectedGroups []string
	deny            []string
	queueDSNFile    string
	adminTokenFile  string
	auditMaxMB      int
	auditKeep       int
	autoLimit       int
	autoWindow      time.Duration
}

func (g *gateFlags) register(fs *pflag.FlagSet) {
	def := guard.DefaultFloors("")
	self := os.Getenv("POD_NAMESPACE")
	if self == "" {
		self = "shepherd"
	}
	fs.StringVar(&g.approval, "approval", guard.ApprovalChat, "who may approve queued tasks: chat (approve_task over MCP) or out-of-band (only shepherd tasks approve)")
	fs.DurationVar(&g.assessmentTTL, "assessment-ttl", guard.DefaultAssessmentTTL, "how long an auto assessment authorizes its one call")
	fs.DurationVar(&g.taskTTL, "task-ttl", guard.DefaultTaskTTL, "how long a queued or approved task stays usable")
	fs.IntVar(&g.autoLimit, "auto-write-limit", 5, "writes an auto assessment may authorize per --auto-write-window; further ones need review; 0: no limit")
	fs.DurationVar(&g.autoWindow, "auto-write-window", guard.DefaultAutoWindow, "the window of --auto-write-limit")
	fs.DurationVar(&g.riskTimeout, "risk-timeout", guard.DefaultRiskTimeout, "Cortex slower than this counts as unreachable (the gate then says review)")
	fs.StringVar(&g.selfNamespace, "self-namespace", self, "shepherd's own namespace, always protected; defaults to $POD_NAMESPACE when set")
	fs.StringSliceVar(&g.protectedNS, "protected-namespaces", def.ProtectedNamespaces, "writes in these namespaces always need a human's review")
	fs.StringSliceVar(&g.protectedGroups, "protected-groups", def.ProtectedGroups, "deleting CRDs of these API groups always needs review")
	fs.StringSliceVar(&g.deny, "deny", nil, "globs on tool or tool:target that are always rejected, e.g. delete_crds:*,scale_workload:prod/*")
	fs.StringVar(&g.queueDSNFile, "queue-dsn-file", "", "file holding a PostgreSQL DSN for the task queue (several replicas); default: files in --data-dir (or SHEPHERD_QUEUE_DSN)")
	fs.IntVar(&g.auditMaxMB, "audit-max-mb", 100, "rotate audit.jsonl in --data-dir when it would grow past this many MiB; 0: never")
	fs.IntVar(&g.auditKeep, "audit-keep", 5, "how many rotated audit files (audit.jsonl.1 ...) to keep")
	fs.StringVar(&g.adminTokenFile, "admin-token-file", "", "file holding the token of the /admin task API used by shepherd tasks (or SHEPHERD_ADMIN_TOKEN); no token, no admin API")
}

// auditMetrics counts audit records by tool and decision, and records that
// could not be written (each of which refused a write): what an operator
// alerts on.
func auditMetrics(reg prometheus.Registerer) guard.AuditOption {
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shepherd_audit_records_total", Help: "Audit records written, by tool and decision (allowed, authorized, refused, executed).",
	}, []string{"tool", "decision"})
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shepherd_audit_write_failures_total", Help: "Audit records that could not be written; a write tool refuses to run then.",
	})
	reg.MustRegister(records, failures)
	return guard.ObserveAudit(func(rec guard.AuditRecord, err error) {
		if err != nil {
			failures.Inc()
			return
		}
		records.WithLabelValues(rec.Tool, rec.Decision).Inc()
	})
}

// orphanAfter is how long a task may execute before it
// counts as interrupted: well above the longest write (delete_crds waits up
// to a minute for CRDs to go; a Git push is seconds).
const orphanAfter = 15 * time.Minute

// openGate builds the gate over the task store and audit log in dataDir.
func (g *gateFlags) openGate(ctx context.Context, dataDir, cluster string, mem guard.Memory, d *tools.Deps, reg prometheus.Registerer) (*guard.Gate, func(), error) {
	if g.autoLimit < 0 || g.autoWindow <= 0 {
		return nil, nil, fmt.Errorf("want --auto-write-limit >= 0 (0: no limit) and a positive --auto-write-window, got %d and %s", g.autoLimit, g.autoWindow)
	}
	if g.auditMaxMB < 0 || g.auditKeep < 1 {
		return nil, nil, fmt.Errorf("audit log: want --audit-max-mb >= 0 and --audit-keep >= 1, got %d and %d", g.auditMaxMB, g.auditKeep)
	}
	var store guard.Store
	closeStore := func() {}
	dsn, err := config.ReadSecret(g.queueDSNFile, "SHEPHERD_QUEUE_DSN")
	if err != nil {
		return nil, nil, fmt.Errorf("--queue-dsn-file: %w", err)
	}
	if dsn != "" {
		pg, err := pgqueue.Open(ctx, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("task queue on PostgreSQL: %w", err)
		}
		store, closeStore = pg, func() { pg.Close() }
	} else {
		fs, err := guard.OpenFileStore(filepath.Join(dataDir, "tasks"))
		if err != nil {
			return nil, nil, fmt.Errorf("task queue: %w", err)
		}
		store = fs
	}
	rot := []guard.AuditOption{auditMetrics(reg)}
	if g.auditMaxMB > 0 {
		rot = append(rot, guard.RotateAudit(int64(g.auditMaxMB)<<20, g.auditKeep))
	}
	audit, err := guard.OpenAuditLog(filepath.Join(dataDir, "audit.jsonl"), rot...)
	if err != nil {
		closeStore()
		return nil, nil, fmt.Errorf("audit log: %w", err)
	}
	floors := guard.FloorConfig{ProtectedNamespaces: append(append([]string{}, g.protectedNS...), g.selfNamespace), ProtectedGroups: g.protectedGroups, Deny: g.deny}
	gate, err := guard.New(guard.Options{
		Memory: mem, Store: store, Audit: audit, Floors: floors,
		AssessmentTTL: g.assessmentTTL, TaskTTL: g.taskTTL, RiskTimeout: g.riskTimeout,
		Approval: g.approval, Cluster: cluster, Logger: d.Log, Defaults: tools.Defaults(d),
		AutoLimit: g.autoLimit, AutoWindow: g.autoWindow,
	})
	if err != nil {
		audit.Close()
		closeStore()
		return nil, nil, err
	}
	// Tasks left executing by a crash are marked interrupted, never re-run.
	// The queue may be shared: by replicas on PostgreSQL, and by processes
	// on one data directory (serve beside stdio, two desktop clients; the
	// file store locks). So only a task executing far longer than any write
	// takes is an orphan, and the check repeats to find it.
	recoverTasks := func(ctx context.Context) {
		if n, err := gate.Recover(ctx, orphanAfter); err != nil {
			d.Log.Warn("recover interrupted tasks", "err", err)
		} else if n > 0 {
			d.Log.Warn("tasks interrupted by a restart marked failed", "count", n)
		}
	}
	recoverTasks(ctx)
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = gate.Sweep(context.Background())
				recoverTasks(context.Background())
				if time.Now().Minute() == 0 {
					_, _ = gate.Prune(context.Background(), 7*24*time.Hour)
				}
			}
		}
	}()
	return gate, func() { close(stop); audit.Close(); closeStore() }, nil
}

// adminRoutes mounts the out-of-band approval API when a token is set.
// The admin token must differ from the MCP bearer token: whoever holds
// that one (the chat client, and so the model's operator) must not be able
// to approve.
func (g *gateFlags) adminRoutes(gate *guard.Gate, bearer string) (map[string]http.Handler, error) {
	token, err := config.ReadSecret(g.adminTokenFile, "SHEPHERD_ADMIN_TOKEN")
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	if token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(bearer)) == 1 {
		return nil, fmt.Errorf("the admin token equals the MCP bearer token (--auth-token-file): any MCP client could then approve its own tasks; give the admin API a token of its own")
	}
	if token == "" {
		if g.approval == guard.ApprovalOutOfBand {
			return nil, fmt.Errorf("--approval=out-of-band needs an admin token (--admin-token-file or SHEPHERD_ADMIN_TOKEN) so that `shepherd tasks approve` can reach the server")
		}
		return nil, nil
	}
	h := guard.AdminHandler(gate, token)
	return map[string]http.Handler{"/admin/": h}, nil
}
