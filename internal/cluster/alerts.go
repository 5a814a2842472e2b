package cluster

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Alert is one problem worth a model's attention, already folded: several
// pods of one workload with the same reason, or many Warning events about
// one object, are one alert.
type Alert struct {
	Severity  int       `json:"severity"` // 0..100, higher is worse
	Namespace string    `json:"namespace,omitempty"`
	Object    string    `json:"object"` // kind/name
	Reason    string    `json:"reason"`
	Detail    string    `json:"detail,omitempty"`
	Count     int       `json:"count,omitempty"` // events folded, or pods affected
	LastSeen  time.Time `json:"last_seen,omitzero"`
}

// AlertReport is the ranked, de-duplicated set of alerts plus how much
// was folded or suppressed to get there.
type AlertReport struct {
	Alerts           []Alert
	EventsFolded     int // Warning event objects folded into alerts
	EventsSuppressed int // stale or about objects that are gone
	PodsChecked      int
}

// severity of pod and event reasons; unknown Warning reasons get 30.
var reasonSeverity = map[string]int{
	"OOMKilled": 92, "CrashLoopBackOff": 90, "ConversionWebhookFailed": 88,
	"ImagePullBackOff": 80, "ErrImagePull": 80, "InvalidImageName": 80,
	"CreateContainerConfigError": 78, "CreateContainerError": 78, "RunContainerError": 78,
	"NodeNotReady": 85, "ReconciliationFailed": 75, "Unschedulable": 70, "FailedScheduling": 70,
	"FailedMount": 65, "FailedAttachVolume": 65, "Evicted": 60, "Failed": 60,
	"MemoryPressure": 60, "DiskPressure": 65, "PIDPressure": 55,
	"BackOff": 50, "NotReady": 50, "Restarting": 45, "Unhealthy": 35,
}

func severityOf(reason string) int {
	if s, ok := reasonSeverity[reason]; ok {
		return s
	}
	return 30
}

// eventWindow is how far back a Warning event still counts as current.
const eventWindow = 2 * time.Hour

// Alerts builds the report for ns (all namespaces when empty) at now.
func (c *Cache) Alerts(ns string, now time.Time) (AlertReport, error) {
	var rep AlertReport
	pods := c.problems.list(ns)
	if ns == "" {
		rep.PodsChecked = c.problems.count()
	} else {
		all, err := c.Pods.Pods(ns).List(labels.Everything())
		if err != nil {
			return rep, err
		}
		rep.PodsChecked = len(all)
	}

	type key struct{ ns, object, reason string }
	byKey := map[key]*Alert{}
	var order []key
	add := func(k key, a Alert) *Alert {
		if cur, ok := byKey[k]; ok {
			return cur
		}
		byKey[k] = &a
		order = append(order, k)
		return byKey[k]
	}

	// Pods: several replicas of one workload failing alike fold into one.
	podWorkload := map[string]string{} // ns/pod → workload object
	for _, p := range pods {
		reason, detail := podProblem(p)
		if reason == "" {
			continue
		}
		obj := "pod/" + p.Name
		if w := workloadOf(p); w != "" {
			obj = w
		}
		podWorkload[p.Namespace+"/"+p.Name] = obj
		if obj != "pod/"+p.Name {
			detail = "pod " + p.Name + ": " + detail
		}
		a := add(key{p.Namespace, obj, reason}, Alert{Severity: severityOf(reason), Namespace: p.Namespace, Object: obj, Reason: reason, Detail: detail})
		a.Count++ // pods affected
	}

	// Warning events, folded by (object, reason). Events about a pod that
	// already has an alert are attached to the workload's alert instead of
	// repeating it.
	events, err := c.listEvents(ns)
	if err != nil {
		return rep, err
	}
	type evAgg struct {
		count int
		last  time.Time
		msg   string
	}
	aggs := map[key]*evAgg{}
	var evOrder []key
	for _, e := range events {
		last := eventTime(e)
		if now.Sub(last) > eventWindow {
			rep.EventsSuppressed++
			continue
		}
		io := e.InvolvedObject
		obj := strings.ToLower(io.Kind) + "/" + io.Name
		if io.Kind == "Pod" {
			if w, ok := podWorkload[io.Namespace+"/"+io.Name]; ok {
				obj = w
			} else if _, err := c.Pods.Pods(io.Namespace).Get(io.Name); err != nil {
				rep.EventsSuppressed++ // the pod is gone; its events are history
				continue
			}
		}
		k := key{io.Namespace, obj, e.Reason}
		ag, ok := aggs[k]
		if !ok {
			ag = &evAgg{}
			aggs[k] = ag
			evOrder = append(evOrder, k)
		}
		rep.EventsFolded++
		ag.count += eventCount(e)
		if !last.Before(ag.last) {
			ag.last, ag.msg = last, e.Message
		}
	}
	for _, k := range evOrder {
		ag := aggs[k]
		// An event about a workload that already has a pod alert enriches
		// it rather than standing alone.
		var host *Alert
		for _, ok := range order {
			if ok.ns == k.ns && ok.object == k.object {
				host = byKey[ok]
				break
			}
		}
		if host != nil {
			host.Detail += fmt.Sprintf("; %s x%d", k.reason, ag.count)
			if ag.last.After(host.LastSeen) {
				host.LastSeen = ag.last
			}
			continue
		}
		a := add(k, Alert{Severity: severityOf(k.reason), Namespace: k.ns, Object: k.object, Reason: k.reason, Detail: ag.msg, LastSeen: ag.last})
		a.Count = ag.count
	}

	// Broken CRD conversion webhooks, one alert per webhook: an uninstalled
	// operator leaves several CRDs behind one missing Service.
	for _, g := range foldConversionIssues(c.ConversionIssues()) {
		add(key{"", g.object, "ConversionWebhookFailed"}, Alert{
			Severity: severityOf("ConversionWebhookFailed"), Object: g.object, Reason: "ConversionWebhookFailed", Detail: g.detail,
		})
	}

	// Failing Flux Kustomizations (when Flux is installed).
	if ks, err := c.Kustomizations(ns); err == nil {
		for _, k := range ks {
			if k.Ready == "False" && !k.Suspended {
				add(key{k.Namespace, "kustomization/" + k.Name, "ReconciliationFailed"}, Alert{
					Severity: severityOf("ReconciliationFailed"), Namespace: k.Namespace, Object: "kustomization/" + k.Name,
					Reason: "ReconciliationFailed", Detail: k.Reason + ": " + k.Message,
				})
			}
		}
	}

	// Nodes, when looking at the whole cluster.
	if ns == "" {
		nodes, err := c.NodeStatuses()
		if err != nil {
			return rep, err
		}
		for _, n := range nodes {
			if n.Ready != "True" {
				add(key{"", "node/" + n.Name, "NodeNotReady"}, Alert{Severity: severityOf("NodeNotReady"), Object: "node/" + n.Name, Reason: "NodeNotReady", Detail: n.Message})
			}
			for _, p := range n.Pressure {
				add(key{"", "node/" + n.Name, p}, Alert{Severity: severityOf(p), Object: "node/" + n.Name, Reason: p})
			}
		}
	}

	for _, k := range order {
		rep.Alerts = append(rep.Alerts, *byKey[k])
	}
	sort.SliceStable(rep.Alerts, func(i, j int) bool {
		a, b := rep.Alerts[i], rep.Alerts[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Object < b.Object
	})
	return rep, nil
}

func (c *Cache) listEvents(ns string) ([]*corev1.Event, error) {
	if ns == "" {
		return c.Events.List(labels.Everything())
	}
	return c.Events.Events(ns).List(labels.Everything())
}

// podProblem returns the reason that matters for a pod, or "" when healthy.
// Order matters: a crash loop caused by OOM is reported as OOMKilled, since
// that is what the operator has to fix.
func podProblem(p *corev1.Pod) (reason, detail string) {
	if p.Status.Phase == corev1.PodSucceeded {
		return "", ""
	}
	for _, list := range [2][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if reason, detail := containerProblem(p, &list[i]); reason != "" {
				return reason, detail
			}
		}
	}
	switch p.Status.Phase {
	case corev1.PodPending:
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return "Unschedulable", c.Message
			}
		}
		return "", "" // still starting
	case corev1.PodFailed:
		r := p.Status.Reason
		if r == "" {
			r = "Failed"
		}
		return r, p.Status.Message
	}
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		if cs.RestartCount >= 5 {
			return "Restarting", fmt.Sprintf("container %s restarted %d times", cs.Name, cs.RestartCount)
		}
	}
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue && p.DeletionTimestamp == nil {
			return "NotReady", c.Message
		}
	}
	return "", ""
}

// containerProblem is the reason one container makes its pod a problem.
func containerProblem(p *corev1.Pod, cs *corev1.ContainerStatus) (reason, detail string) {
	w := cs.State.Waiting
	last := cs.LastTerminationState.Terminated
	if w != nil && w.Reason == "CrashLoopBackOff" {
		if last != nil && last.Reason == "OOMKilled" {
			return "OOMKilled", fmt.Sprintf("container %s OOMKilled, %d restarts%s", cs.Name, cs.RestartCount, memLimit(p, cs.Name))
		}
		d := fmt.Sprintf("container %s, %d restarts", cs.Name, cs.RestartCount)
		if last != nil {
			d += fmt.Sprintf(", last exit %d (%s)", last.ExitCode, last.Reason)
		}
		return "CrashLoopBackOff", d
	}
	if w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
		return w.Reason, fmt.Sprintf("container %s: %s", cs.Name, w.Message)
	}
	if last != nil && last.Reason == "OOMKilled" && cs.RestartCount > 0 {
		return "OOMKilled", fmt.Sprintf("container %s OOMKilled, %d restarts%s", cs.Name, cs.RestartCount, memLimit(p, cs.Name))
	}
	return "", ""
}

func memLimit(p *corev1.Pod, container string) string {
	for _, c := range p.Spec.Containers {
		if c.Name == container {
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
				return ", memory limit " + q.String()
			}
		}
	}
	return ""
}

// workloadOf names the Deployment or StatefulSet that owns a pod, so that
// replicas failing alike fold into one alert.
func workloadOf(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		switch o.Kind {
		case "ReplicaSet":
			if h := p.Labels["pod-template-hash"]; h != "" {
				if name, ok := strings.CutSuffix(o.Name, "-"+h); ok {
					return "deployment/" + name
				}
			}
			return "replicaset/" + o.Name
		case "StatefulSet":
			return "statefulset/" + o.Name
		case "DaemonSet":
			return "daemonset/" + o.Name
		case "Job":
			return "job/" + o.Name
		}
	}
	return ""
}

func eventTime(e *corev1.Event) time.Time {
	t := e.LastTimestamp.Time
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	if e.EventTime.After(t) {
		t = e.EventTime.Time
	}
	if t.IsZero() {
		t = e.CreationTimestamp.Time
	}
	return t
}

func eventCount(e *corev1.Event) int {
	n := int(e.Count)
	if e.Series != nil && int(e.Series.Count) > n {
		n = int(e.Series.Count)
	}
	if n < 1 {
		n = 1
	}
	return n
}

type conversionGroup struct{ object, detail string }

// foldConversionIssues groups issues by webhook (service or URL) and says
// which CRDs and API groups each one breaks.
func foldConversionIssues(issues []ConversionIssue) []conversionGroup {
	var order []string
	by := map[string][]ConversionIssue{}
	for _, ci := range issues {
		k := ci.Service
		if k == "" {
			k = "crd/" + ci.CRD
		}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], ci)
	}
	out := make([]conversionGroup, 0, len(order))
	for _, k := range order {
		cis := by[k]
		var crds, groups []string
		for _, ci := range cis {
			crds = append(crds, ci.CRD)
			if !slices.Contains(groups, ci.Group) {
				groups = append(groups, ci.Group)
			}
		}
		object := "webhook/" + k
		if strings.HasPrefix(k, "crd/") {
			object = k
		}
		noun := "CRDs"
		if len(crds) == 1 {
			noun = "CRD"
		}
		out = append(out, conversionGroup{object: object, detail: fmt.Sprintf("%d %s of %s cannot be listed (%s): %s",
			len(crds), noun, strings.Join(groups, ", "), strings.Join(crds, ", "), cis[0].Error)})
	}
	return out
}
