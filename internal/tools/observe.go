package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cluster-shepherd/shepherd/internal/answer"
	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/redact"
)

type namespaceIn struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"only this namespace; omit for the whole cluster"`
}

type logsIn struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the pod"`
	Pod       string `json:"pod" jsonschema:"exact pod name, as shown by get_cluster_alerts"`
	Container string `json:"container,omitempty" jsonschema:"container name; defaults to the pod's first container"`
	Lines     int    `json:"lines,omitempty" jsonschema:"how many of the last lines to return: default 100, at most 200"`
	Previous  bool   `json:"previous,omitempty" jsonschema:"true for the log of the previous, crashed container instance (use for CrashLoopBackOff)"`
}

type noArgs struct{}

func observeTools() []Tool {
	return []Tool{
		define(mcp.Tool{
			Name: "get_cluster_alerts",
			Description: "What is wrong in the cluster right now, most serious first. Folds problems into one line each: " +
				"pods that are not Running/Ready with the reason that matters (CrashLoopBackOff, OOMKilled, ImagePullBackOff, " +
				"Unschedulable...), Warning events grouped by object and reason with a count and when last seen, " +
				"CRDs whose conversion webhook is broken, failing Flux Kustomizations and unhealthy nodes. Start here.",
			Annotations: readOnly("Cluster alerts"),
		}, false, clusterAlerts),
		define(mcp.Tool{
			Name: "get_pod_logs",
			Description: "The last lines of one container's log (default 100, at most 200), with secret-looking values masked. " +
				"Use previous=true to read why a crash-looping container died. Needs the exact pod name (see get_cluster_alerts).",
			Annotations: readOnly("Pod logs"),
		}, false, podLogs),
		define(mcp.Tool{
			Name:        "get_node_status",
			Description: "Every node with Ready, pressure conditions (memory, disk, PID), kubelet version and roles.",
			Annotations: readOnly("Node status"),
		}, false, nodeStatus),
		define(mcp.Tool{
			Name: "get_flux_status",
			Description: "Flux Kustomizations (the GitOps sync units): ready or not, suspended, last applied revision and " +
				"a short message; failing first.",
			Annotations: readOnly("Flux status"),
		}, false, fluxStatus),
		define(mcp.Tool{
			Name: "list_workloads",
			Description: "Deployments and StatefulSets with ready/desired replicas and images, grouped by namespace. " +
				"Use it to learn the exact names other tools need.",
			Annotations: readOnly("List workloads"),
		}, false, listWorkloads),
		define(mcp.Tool{
			Name:        "get_node_list",
			Description: "Node names and the address shepherd would use to reach each node over SSH.",
			Annotations: readOnly("Node list"),
		}, false, nodeList),
	}
}

// checkNamespace validates an optional namespace argument and that it exists.
func checkNamespace(d *Deps, ns string, required bool) error {
	if ns == "" {
		if required {
			return badArg("namespace is required")
		}
		return nil
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return badArg("invalid namespace %q: %s", ns, errs[0])
	}
	if !d.Cache.NamespaceExists(ns) {
		return badArg("namespace %q not found; list_workloads without a namespace shows the namespaces in use", ns)
	}
	return nil
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func clusterAlerts(ctx context.Context, d *Deps, in namespaceIn) (string, error) {
	if err := checkNamespace(d, in.Namespace, false); err != nil {
		return "", err
	}
	now := d.now()
	rep, err := d.Cache.Alerts(in.Namespace, now)
	if err != nil {
		return "", fmt.Errorf("get_cluster_alerts: %w", err)
	}
	scope := "the cluster"
	if in.Namespace != "" {
		scope = "namespace " + in.Namespace
	}
	a := answer.New(d.MaxBytes)
	if len(rep.Alerts) == 0 {
		a.Linef("No alerts in %s: %d pods checked, no current Warning events (%d stale or about deleted objects suppressed).", scope, rep.PodsChecked, rep.EventsSuppressed)
		return a.String("", ""), nil
	}
	a.Linef("%d alerts in %s, most serious first (%d pods checked; %d Warning events folded in, %d stale or about deleted objects suppressed).",
		len(rep.Alerts), scope, rep.PodsChecked, rep.EventsFolded, rep.EventsSuppressed)
	for i, al := range rep.Alerts {
		where := al.Object
		if al.Namespace != "" {
			where = al.Namespace + " " + al.Object
		}
		line := fmt.Sprintf("%d. %s %s", i+1, where, al.Reason)
		switch {
		case strings.HasPrefix(al.Object, "deployment/") || strings.HasPrefix(al.Object, "statefulset/") || strings.HasPrefix(al.Object, "pod/"):
			if al.Count > 1 && al.LastSeen.IsZero() {
				line += fmt.Sprintf(" (%d pods)", al.Count)
			}
		case al.Count > 1:
			line += fmt.Sprintf(" x%d", al.Count)
		}
		if s := ago(now, al.LastSeen); s != "" {
			line += ", last " + s
		}
		if al.Detail != "" {
			line += ": " + answer.Clip(al.Detail, 300)
		}
		a.Line(line)
	}
	return a.String("alerts", "namespace=<ns>"), nil
}

func podLogs(ctx context.Context, d *Deps, in logsIn) (string, error) {
	if err := checkNamespace(d, in.Namespace, true); err != nil {
		return "", err
	}
	if in.Pod == "" {
		return "", badArg("pod is required")
	}
	if errs := validation.IsDNS1123Subdomain(in.Pod); len(errs) > 0 {
		return "", badArg("invalid pod name %q: %s", in.Pod, errs[0])
	}
	lines := in.Lines
	note := ""
	switch {
	case lines < 0:
		return "", badArg("lines must be positive (default 100, at most %d)", cluster.MaxLogLines)
	case lines == 0:
		lines = 100
	case lines > cluster.MaxLogLines:
		lines = cluster.MaxLogLines
		note = fmt.Sprintf(" (capped at %d lines)", cluster.MaxLogLines)
	}
	logs, err := d.Cache.Logs(ctx, in.Namespace, in.Pod, in.Container, lines, in.Previous)
	if err != nil {
		var nf *cluster.ErrNotFound
		if errors.As(err, &nf) {
			return "", badArg("%s", nf.Error())
		}
		return "", fmt.Errorf("get_pod_logs: %w", err)
	}
	which := "current"
	if in.Previous {
		which = "previous"
	}
	a := answer.New(d.MaxBytes)
	head := fmt.Sprintf("%s/%s container %s (%s instance): last %d lines%s", in.Namespace, in.Pod, logs.Container, which, len(logs.Lines), note)
	if len(logs.Others) > 0 {
		head += "; other containers: " + strings.Join(logs.Others, ", ")
	}
	a.Line(head)
	if len(logs.Lines) == 0 {
		a.Line("(log is empty)")
	}
	// Mask first, over every line: a private key spans lines, and its BEGIN
	// line may fall outside what is kept.
	masked := redact.Lines(append([]string(nil), logs.Lines...))
	// Keep the newest lines when the byte cap cuts: walk from the end.
	kept := keepTail(masked, d.MaxBytes-len(head)-300)
	if dropped := len(masked) - len(kept); dropped > 0 {
		a.Linef("[%d older lines not shown (answer capped at %d bytes); ask for fewer lines]", dropped, d.MaxBytes)
	}
	for _, l := range kept {
		a.Line(answer.Clip(l, 2000))
	}
	return a.String("lines", "lines=<n>"), nil
}

// keepTail returns the longest suffix of lines that fits in max bytes.
func keepTail(lines []string, max int) []string {
	total := 0
	for i := len(lines) - 1; i >= 0; i-- {
		n := min(len(lines[i]), 2000) + 1
		if total+n > max {
			return lines[i+1:]
		}
		total += n
	}
	return lines
}

func nodeStatus(ctx context.Context, d *Deps, _ noArgs) (string, error) {
	nodes, err := d.Cache.NodeStatuses()
	if err != nil {
		return "", fmt.Errorf("get_node_status: %w", err)
	}
	a := answer.New(d.MaxBytes)
	notReady, pressured := 0, 0
	for _, n := range nodes {
		if n.Ready != "True" {
			notReady++
		}
		if len(n.Pressure) > 0 {
			pressured++
		}
	}
	a.Linef("%d nodes: %d not Ready, %d under pressure", len(nodes), notReady, pressured)
	for _, n := range nodes {
		line := fmt.Sprintf("%s Ready=%s kubelet=%s", n.Name, n.Ready, n.Kubelet)
		if len(n.Roles) > 0 {
			line += " roles=" + strings.Join(n.Roles, ",")
		}
		if len(n.Pressure) > 0 {
			line += " pressure=" + strings.Join(n.Pressure, ",")
		}
		if !n.Schedulable {
			line += " cordoned"
		}
		if n.Message != "" {
			line += ": " + answer.Clip(n.Message, 200)
		}
		a.Line(line)
	}
	return a.String("nodes", ""), nil
}

func fluxStatus(ctx context.Context, d *Deps, in namespaceIn) (string, error) {
	if err := checkNamespace(d, in.Namespace, false); err != nil {
		return "", err
	}
	ks, err := d.Cache.Kustomizations(in.Namespace)
	if errors.Is(err, cluster.ErrFluxMissing) || errors.Is(err, cluster.ErrFluxUnlisted) {
		return "", badArg("%s", err.Error())
	}
	if err != nil {
		return "", fmt.Errorf("get_flux_status: %w", err)
	}
	failing, suspended := 0, 0
	for _, k := range ks {
		if k.Suspended {
			suspended++
		} else if k.Ready != "True" {
			failing++
		}
	}
	a := answer.New(d.MaxBytes)
	a.Linef("%d Kustomizations: %d not ready, %d suspended, %d ready", len(ks), failing, suspended, len(ks)-failing-suspended)
	for _, k := range ks {
		line := fmt.Sprintf("%s/%s Ready=%s", k.Namespace, k.Name, k.Ready)
		if k.Suspended {
			line += " SUSPENDED"
		}
		if k.Reason != "" && k.Ready != "True" {
			line += " " + k.Reason
		}
		if k.Revision != "" {
			line += " rev=" + k.Revision
		}
		if k.Ready != "True" && k.Message != "" {
			line += ": " + answer.Clip(k.Message, 240)
		}
		a.Line(line)
	}
	return a.String("kustomizations", "namespace=<ns>"), nil
}

func listWorkloads(ctx context.Context, d *Deps, in namespaceIn) (string, error) {
	if err := checkNamespace(d, in.Namespace, false); err != nil {
		return "", err
	}
	ws, err := d.Cache.Workloads(in.Namespace)
	if err != nil {
		return "", fmt.Errorf("list_workloads: %w", err)
	}
	notReady := 0
	for _, w := range ws {
		if r := strings.SplitN(w.Ready, "/", 2); r[0] != r[1] {
			notReady++
		}
	}
	a := answer.New(d.MaxBytes)
	a.Linef("%d workloads (%d not fully ready); per namespace: kind name ready/desired images", len(ws), notReady)
	ns := ""
	for _, w := range ws {
		if w.Namespace != ns {
			ns = w.Namespace
			if !a.Line(ns + ":") {
				continue
			}
		}
		kind := "deploy"
		if w.Kind == "StatefulSet" {
			kind = "sts"
		}
		a.Linef(" %s %s %s %s", kind, w.Name, w.Ready, strings.Join(w.Images, ","))
	}
	return a.String("lines", "namespace=<ns>"), nil
}

func nodeList(ctx context.Context, d *Deps, _ noArgs) (string, error) {
	addrs, err := d.Cache.NodeAddresses(d.NodeAddrs)
	if err != nil {
		return "", fmt.Errorf("get_node_list: %w", err)
	}
	a := answer.New(d.MaxBytes)
	a.Linef("%d nodes: name ssh-address (source)", len(addrs))
	for _, n := range addrs {
		addr := n.Address
		if addr == "" {
			addr = "none"
		}
		a.Linef("%s %s (%s)", n.Name, addr, n.Type)
	}
	return a.String("nodes", ""), nil
}
