// Command observe measures the observation tools on a real control plane:
// answer size against raw API JSON on the seeded home lab, and latency of
// each tool at 1,000 Deployments and 5,000 pods. Run: go run ./bench/observe
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/testenv"
	"github.com/cluster-shepherd/shepherd/internal/tools"
)

func main() {
	n := flag.Int("n", 500, "calls per tool")
	deps := flag.Int("deployments", 1000, "Deployments in the large cluster")
	pods := flag.Int("pods", 5000, "extra pods in the large cluster")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the latency phase to this file")
	flag.Parse()
	cpuProfile = *profile
	if err := run(*n, *deps, *pods); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type rig struct {
	env   *testenv.Env
	sc    *testenv.Scenario
	cache *cluster.Cache
	sess  *mcp.ClientSession
	reg   *prometheus.Registry
	stop  func()
}

// start runs a control plane, seeds it and connects a real MCP client to
// shepherd's tools over in-memory transports.
func start(ctx context.Context, opts testenv.SeedOptions) (*rig, error) {
	env, err := testenv.Start(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	sc, err := testenv.Seed(ctx, env.Config, opts)
	if err != nil {
		env.Stop()
		return nil, err
	}
	fmt.Printf("  seeded %d pods in %s\n", sc.PodCount, time.Since(t0).Round(time.Millisecond))
	client, err := cluster.NewClient(env.Config)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := cluster.NewCache(client, quiet)
	cctx, cancel := context.WithCancel(ctx)
	if err := c.Start(cctx, 2*time.Minute); err != nil {
		cancel()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	srv := tools.NewServer(&tools.Deps{Cache: c, Log: quiet, Metrics: tools.NewMetrics(reg)}, tools.All(), "bench")
	st, ct := mcp.NewInMemoryTransports()
	if _, err := srv.Connect(cctx, st, nil); err != nil {
		cancel()
		return nil, err
	}
	sess, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(cctx, ct, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	return &rig{env: env, sc: sc, cache: c, sess: sess, reg: reg, stop: func() { sess.Close(); cancel(); sc.Close(); env.Stop() }}, nil
}

func (r *rig) call(ctx context.Context, tool string, args map[string]any) (string, error) {
	res, err := r.sess.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if res.IsError {
		return "", fmt.Errorf("%s: %s", tool, text)
	}
	return text, nil
}

// cpuProfile names the CPU profile file, if any.
var cpuProfile string

func run(n, deployments, pods int) error {
	ctx := context.Background()
	fmt.Println("== answer size on the seeded home lab (40 healthy Deployments + problem workloads)")
	small, err := start(ctx, testenv.SeedOptions{})
	if err != nil {
		return err
	}
	text, err := small.call(ctx, "list_workloads", nil)
	if err != nil {
		return err
	}
	kube := small.cache.Client().Kube
	var raw40, rawAll int
	healthy := map[string]bool{}
	for _, d := range small.sc.Deployments {
		healthy[d.Namespace+"/"+d.Name] = true
	}
	list, err := kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, d := range list.Items {
		d.APIVersion, d.Kind = "apps/v1", "Deployment"
		b, _ := json.Marshal(d)
		rawAll += len(b)
		if healthy[d.Namespace+"/"+d.Name] {
			raw40 += len(b)
		}
	}
	sts, _ := kube.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	for _, s := range sts.Items {
		b, _ := json.Marshal(s)
		rawAll += len(b)
	}
	// The bytes of the answer's lines about the 40 healthy Deployments.
	lines40 := 0
	ns := ""
	for _, l := range strings.Split(text, "\n") {
		if strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " ") {
			ns = strings.TrimSuffix(l, ":")
			continue
		}
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "deploy" && healthy[ns+"/"+f[1]] {
			lines40 += len(l) + 1
		}
	}
	workloads := len(list.Items) + len(sts.Items)
	fmt.Printf("  %-52s %8d bytes   (target <= 4096)\n", fmt.Sprintf("list_workloads, whole cluster (%d workloads)", workloads), len(text))
	fmt.Printf("  %-52s %8d bytes\n", "  of which the lines of the 40 healthy Deployments", lines40)
	fmt.Printf("  %-52s %8d bytes   ratio %.0fx\n", "raw API JSON of the 40 healthy Deployments", raw40, float64(raw40)/float64(lines40))
	fmt.Printf("  %-52s %8d bytes   ratio %.0fx\n", fmt.Sprintf("raw API JSON of all %d workloads", workloads), rawAll, float64(rawAll)/float64(len(text)))
	alerts, _ := small.call(ctx, "get_cluster_alerts", nil)
	fmt.Printf("  %-52s %8d bytes\n", "get_cluster_alerts (home lab)", len(alerts))
	logPod := small.sc.LogPod
	small.stop()

	fmt.Printf("\n== latency at %d Deployments and %d extra pods (%d calls per tool)\n", deployments, pods, n)
	big, err := start(ctx, testenv.SeedOptions{Deployments: deployments, ExtraPods: pods})
	if err != nil {
		return err
	}
	defer big.stop()
	podCount := len(mustPods(big))
	fmt.Printf("  cache holds %d pods\n", podCount)
	fmt.Println("  MCP round trip over in-memory transports: the tool handler plus JSON-RPC encode/decode, no network")
	fmt.Println("  server<=5ms: share of this tool's calls (cumulative) that took at most 5 ms inside shepherd (shepherd_tool_duration_seconds)")
	fmt.Printf("  %-22s %9s %9s %9s %9s   %s\n", "tool", "p50", "p99", "max", "server<=5ms", "answer bytes")
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cases := []struct {
		tool string
		args map[string]any
	}{
		{"get_cluster_alerts", nil},
		{"get_node_status", nil},
		{"get_flux_status", nil},
		{"list_workloads", nil},
		{"list_workloads", map[string]any{"namespace": "immich"}},
		{"get_node_list", nil},
		{"get_pod_logs", map[string]any{"namespace": logPod.Namespace, "pod": big.sc.LogPod.Name, "lines": 100}},
	}
	for _, c := range cases {
		var ds []time.Duration
		size := 0
		for i := 0; i < n; i++ {
			t0 := time.Now()
			out, err := big.call(ctx, c.tool, c.args)
			ds = append(ds, time.Since(t0))
			if err != nil {
				return err
			}
			size = len(out)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		name := c.tool
		if c.args != nil && c.tool == "list_workloads" {
			name += " ns=immich"
		}
		note := "(target p99 < 5ms, from the cache)"
		if c.tool == "get_pod_logs" {
			note = "(not cached: API server -> kubelet stand-in)"
		}
		fmt.Printf("  %-22s %9s %9s %9s %8.1f%%   %6d %s\n", name, ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)*99/100].Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond), big.under5ms(c.tool), size, note)
	}
	return nil
}

func mustPods(r *rig) []*corev1.Pod {
	ps, _ := r.cache.Pods.List(labels.Everything())
	return ps
}

// under5ms reads shepherd's own duration histogram: the share of a tool's
// calls that took at most 5 ms server-side.
func (r *rig) under5ms(tool string) float64 {
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "shepherd_tool_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != tool {
				continue
			}
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == 0.005 {
					return 100 * float64(b.GetCumulativeCount()) / float64(h.GetSampleCount())
				}
			}
		}
	}
	return 0
}
