package cortex

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/cortex/lexical"
)

// Class is an action class with its prior risk. The order is the order of
// harm: reading < reconciling < restarting < scaling down < suspending <
// changing GitOps < deleting or scaling to zero < destroying data.
type Class struct {
	Name  string
	Prior float64
	rank  int
}

// The action classes, least harmful first.
var (
	ClassRead      = Class{"read", 0.02, 0}
	ClassReconcile = Class{"reconcile", 0.08, 1}
	ClassRestart   = Class{"restart", 0.15, 2}
	ClassScaleDown = Class{"scale_down", 0.22, 3}
	ClassSuspend   = Class{"suspend", 0.32, 4}
	ClassGitOps    = Class{"gitops_update", 0.42, 5}
	ClassDelete    = Class{"delete", 0.62, 6}
	ClassDestroy   = Class{"destroy_data", 0.9, 7}
	// ClassUnknown is an action Cortex cannot place: review, never auto.
	ClassUnknown = Class{"unknown", 0.5, 5}
)

// Risk-scoring weights, named so the reasoning can be checked by hand.
const (
	incidentWeight = 1.0  // an outcome that caused an incident
	failedWeight   = 0.6  // an outcome that failed
	historyAlpha   = 0.6  // how much one fully similar, fresh incident counts
	otherCluster   = 0.8  // an incident in another cluster counts a bit less
	minSimilarity  = 0.35 // below this a past outcome is not "similar"
	verifiedRelief = 0.5  // share of the history raise a verified solution removes
	maxCited       = 5
)

// target is what an action acts on.
type target struct {
	namespace, name string
	tokens          map[string]bool // distinctive words naming the target
}

func (t target) known() bool { return len(t.tokens) > 0 }

// generic words name kinds of things, not particular things; they never
// identify a target.
var generic = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`restart rollout bounce recreate reboot scale replica replicas down up zero
		suspend resume pause reconcile sync refresh delete remove drop wipe destroy purge uninstall evict drain cordon
		get list show describe log logs read check status view inspect diagnose top run cmd command node
		deploy deployment deployments statefulset statefulsets daemonset pod pods container workload workloads
		service svc server api app web worker db job cronjob namespace ns kustomization flux helmrelease release
		gitops change commit push update create edit patch apply upgrade bump set image file yaml manifest
		crd crds custom resource resources cluster to the of in for on with from and a an
		operation name kind replica default kube system prod production staging`) {
		generic[lexical.Stem(w)] = true
	}
}

var nsName = regexp.MustCompile(`\b([a-z0-9][a-z0-9-]{0,62})/([a-z0-9][a-z0-9.-]{0,252})\b`)

func targetOf(text string, args map[string]any) target {
	t := target{tokens: map[string]bool{}}
	t.namespace, t.name = argString(args, "namespace"), argString(args, "name")
	if t.namespace == "" && t.name == "" {
		if m := nsName.FindStringSubmatch(strings.ToLower(text)); m != nil && !strings.HasPrefix(m[2], "v1") {
			t.namespace, t.name = m[1], m[2]
		}
	}
	var naming []string
	for _, k := range []string{"namespace", "name", "domain", "node", "file_path"} {
		naming = append(naming, argString(args, k))
	}
	naming = append(naming, t.namespace, t.name)
	if t.namespace == "" && t.name == "" && len(args) == 0 {
		naming = append(naming, text) // free text: its distinctive words name the target
	}
	for _, n := range naming {
		for w := range words(strings.NewReplacer("-", " ", "_", " ", ".", " ", "/", " ").Replace(n)) {
			if !generic[w] && len(w) > 2 && !isNumber(w) {
				t.tokens[w] = true
			}
		}
	}
	return t
}

func isNumber(s string) bool { _, err := strconv.Atoi(s); return err == nil }

func argString(args map[string]any, k string) string {
	v, ok := args[k]
	if !ok || v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return strings.ToLower(strings.TrimSpace(x))
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return strings.ToLower(fmt.Sprint(x))
	}
}

func argInt(args map[string]any, k string) (int, bool) {
	switch x := args[k].(type) {
	case float64:
		return int(x), true
	case int:
		return x, true
	case int64:
		return int(x), true
	case json.Number:
		n, err := x.Int64()
		return int(n), err == nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		return n, err == nil
	}
	return 0, false
}

var dataKinds = regexp.MustCompile(`(?i)\b(persistentvolumeclaims?|pvcs?|persistentvolumes?|pv|namespaces?|ns|databases?|db|postgres(ql)?|cnpg|mysql|mariadb|mongo(db)?|redis|etcd|volumes?|buckets?|backups?|crds?|customresourcedefinitions?|data|statefulsets?|secrets?)\b`)
var dataClusterKinds = regexp.MustCompile(`(?i)\b(database|postgres(ql)?|cnpg|db|mysql|mongo(db)?)[ -]?cluster\b|kind:\s*(cluster|persistentvolumeclaim|namespace)\b`)

// Classify places an action in a class, from the tool call when given (its
// arguments are precise) and from the text otherwise.
func Classify(action, tool string, args map[string]any) Class {
	switch tool {
	case "restart_workload":
		return ClassRestart
	case "scale_workload":
		if n, ok := argInt(args, "replicas"); ok && n == 0 {
			return ClassDelete
		}
		return ClassScaleDown
	case "run_flux_op":
		switch argString(args, "operation") {
		case "suspend":
			return ClassSuspend
		case "resume", "reconcile":
			return ClassReconcile
		}
		return ClassUnknown
	case "gitops_change":
		switch argString(args, "operation") {
		case "read":
			return ClassRead
		case "create", "update":
			if dataClusterKinds.MatchString(argString(args, "content")) && strings.Contains(strings.ToLower(action), "delet") {
				return ClassDestroy
			}
			return ClassGitOps
		case "delete":
			if dataClusterKinds.MatchString(argString(args, "content")+" "+argString(args, "file_path")) ||
				dataKinds.MatchString(argString(args, "file_path")) {
				return ClassDestroy
			}
			return ClassDelete
		}
		return ClassUnknown
	case "delete_crds":
		// The delete class: the usual case is an uninstalled operator's
		// leftovers. The custom resources that would go with them are counted
		// live by shepherd and raise the floor to review with the count.
		return ClassDelete
	case "run_node_cmd":
		return ClassRead // only allowlisted diagnostics reach this tool
	case "":
	default:
		if strings.HasPrefix(tool, "get_") || strings.HasPrefix(tool, "list_") || tool == "query_cortex" {
			return ClassRead
		}
	}
	return classifyText(action)
}

func classifyText(action string) Class {
	a := strings.ToLower(action)
	w := words(a)
	has := func(stems ...string) bool {
		for _, s := range stems {
			if w[lexical.Stem(s)] {
				return true
			}
		}
		return false
	}
	destructive := has("delete", "deleting", "remove", "removing", "drop", "dropping", "wipe", "destroy", "purge", "truncate", "uninstall") ||
		strings.Contains(a, "rm -rf")
	switch {
	case destructive && (dataKinds.MatchString(a) || dataClusterKinds.MatchString(a)):
		return ClassDestroy
	case destructive,
		regexp.MustCompile(`scal\w*\b.*\bto (0|zero)\b|replicas[=: ]+0\b|\bzero replicas\b`).MatchString(a):
		return ClassDelete
	case has("suspend", "pause"):
		return ClassSuspend
	case has("commit", "push", "merge", "edit", "patch", "apply", "upgrade", "bump", "gitops", "change", "update", "modify", "rollback"):
		return ClassGitOps
	case has("scale", "drain", "cordon", "evict"):
		return ClassScaleDown
	case has("restart", "restarting", "rollout", "bounce", "recreate", "reboot", "redeploy"):
		return ClassRestart
	case has("reconcile", "resume", "sync", "refresh", "retry"):
		return ClassReconcile
	case has("get", "list", "show", "describe", "log", "read", "check", "status", "view", "inspect", "diagnose", "top", "query", "look"):
		return ClassRead
	}
	return ClassUnknown
}

// Risk scores a proposed action: the class prior, raised by similar past
// incidents and failed outcomes (weighted by similarity and recency), with
// part of that raise taken back by verified solutions of a matching known
// error, never below the prior. Same inputs, same history, same clock: same
// answer.
func (s *Service) Risk(ctx context.Context, req RiskRequest) (RiskResponse, error) {
	req.Action = strings.TrimSpace(req.Action)
	if req.Action == "" && req.Tool == "" {
		return RiskResponse{}, invalid("action is empty")
	}
	if len(req.Action) > maxQueryBytes {
		return RiskResponse{}, invalid("action is %d bytes, the limit is %d", len(req.Action), maxQueryBytes)
	}
	if len(req.Tool) > MaxKeyBytes {
		return RiskResponse{}, invalid("tool is %d bytes, the limit is %d", len(req.Tool), MaxKeyBytes)
	}
	if req.Action == "" {
		req.Action = describe(req.Tool, req.Arguments)
	}
	class := Classify(req.Action, req.Tool, req.Arguments)
	tgt := targetOf(req.Action, req.Arguments)
	now := s.opts.Clock()

	// Outcomes live in chat_history; search it with the action and its target.
	q := req.Action
	if req.Tool != "" {
		q += " " + describe(req.Tool, req.Arguments)
	}
	cands, _, err := s.retrieve(ctx, q, Filter{Collections: []string{CollectionChat}}, 50, Hybrid)
	if err != nil {
		return RiskResponse{}, err
	}
	aw := words(q)
	var similar []Incident
	var contribs []float64
	for _, c := range cands {
		d, ok, err := s.docs.Get(ctx, c.Collection, c.ID)
		if err != nil {
			return RiskResponse{}, unavailable("load %s/%s: %w", c.Collection, c.ID, err)
		}
		if !ok {
			continue
		}
		weight := 0.0
		switch {
		case d.Metadata["outcome"] == OutcomeIncident || d.Metadata["kind"] == "incident":
			weight = incidentWeight
		case d.Metadata["outcome"] == OutcomeFailed:
			weight = failedWeight
		default:
			continue
		}
		sim := similarity(class, tgt, aw, d)
		if sim < minSimilarity {
			continue
		}
		when := metaTime(d, "when", d.CreatedAt)
		recency := math.Pow(0.5, float64(age(now, when))/float64(s.opts.HalfLife))
		if req.Cluster != "" && d.Cluster != "" && d.Cluster != req.Cluster {
			weight *= otherCluster
		}
		outcome := d.Metadata["outcome"]
		if outcome == "" {
			outcome = OutcomeIncident
		}
		similar = append(similar, Incident{ID: d.ID, When: when.UTC(), What: oneLine(d.Text, 240), Outcome: outcome, Similarity: round2(sim)})
		contribs = append(contribs, sim*weight*recency*historyAlpha)
	}
	// Strongest first, ties by id, so reasoning and score are stable.
	idx := make([]int, len(similar))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := idx[a], idx[b]
		if contribs[x] != contribs[y] {
			return contribs[x] > contribs[y]
		}
		return similar[x].ID < similar[y].ID
	})
	keep := 1.0
	sorted := make([]Incident, len(idx))
	for i, j := range idx {
		sorted[i] = similar[j]
		keep *= 1 - contribs[j]
	}
	raise := 1 - keep

	var ids []string
	for _, inc := range sorted {
		ids = append(ids, inc.ID)
	}
	matched, err := s.matchingErrors(ctx, req.Action, ids)
	if err != nil {
		return RiskResponse{}, err
	}
	var relief []string
	for _, m := range matched {
		if !targetMatchesText(tgt, m.err.Pattern+" "+m.err.Summary) && !anyIn(m.err.Incidents, ids) {
			continue // a verified fix for someone else's problem says nothing here
		}
		for _, sol := range m.solutions {
			if sol.Verified {
				relief = append(relief, fmt.Sprintf("verified solution %s for known error %s", sol.ID, m.err.ID))
				break
			}
		}
	}
	if len(relief) > 0 {
		raise *= 1 - verifiedRelief
	}
	score := round2(class.Prior + (1-class.Prior)*raise)
	rec := Auto
	switch {
	case score >= s.opts.Thresholds.Reject:
		rec = Reject
	case score >= s.opts.Thresholds.Review:
		rec = Review
	}
	if len(sorted) > maxCited {
		sorted = sorted[:maxCited]
	}
	return RiskResponse{Score: score, Recommendation: rec, Class: class.Name,
		Reasoning:        reasoning(class, tgt, sorted, len(similar), relief, score, rec, s.opts.Thresholds),
		SimilarIncidents: sorted}, nil
}

func anyIn(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func round2(x float64) float64 { return math.Round(x*1000) / 1000 }

// similarity of a past outcome to the proposed action, in [0, 1]: mostly
// whether it concerns the same target, then shared words, then whether it was
// the same kind of action. An outcome about another target can never pass
// minSimilarity, so authentik's history does not touch immich.
func similarity(class Class, tgt target, actionWords map[string]bool, d Document) float64 {
	dw := words(d.Text + " " + d.Metadata["action"])
	text := cosine(actionWords, dw)
	dc := Classify(firstNonEmpty(d.Metadata["action"], d.Text), d.Metadata["tool"], argsOf(d))
	cm := 0.0
	switch diff := dc.rank - class.rank; {
	case dc == class:
		cm = 1
	case diff == 1 || diff == -1:
		cm = 0.5
	}
	if !tgt.known() {
		return 0.6*text + 0.4*cm
	}
	tm := targetMatch(tgt, d, dw)
	sim := 0.55*tm + 0.25*text + 0.2*cm
	if tm == 0 {
		sim *= 0.3
	}
	return sim
}

func targetMatch(tgt target, d Document, dw map[string]bool) float64 {
	ns, name := strings.ToLower(d.Metadata["namespace"]), strings.ToLower(d.Metadata["name"])
	lower := strings.ToLower(d.Text)
	switch {
	case tgt.namespace != "" && tgt.name != "" && ns == tgt.namespace && name == tgt.name:
		return 1
	case tgt.name != "" && (name == tgt.name || strings.Contains(lower, tgt.name) && len(tgt.name) > 3 && !generic[tgt.name]):
		return 0.9
	case tgt.namespace != "" && (ns == tgt.namespace || !generic[tgt.namespace] && dw[lexical.Stem(tgt.namespace)]):
		return 0.75
	}
	return 0.7 * coverage(tgt.tokens, dw)
}

func targetMatchesText(tgt target, text string) bool {
	if !tgt.known() {
		return true
	}
	return coverage(tgt.tokens, words(text)) > 0
}

func argsOf(d Document) map[string]any {
	if d.Metadata["arguments"] == "" {
		return nil
	}
	var m map[string]any
	if json.Unmarshal([]byte(d.Metadata["arguments"]), &m) != nil {
		return nil
	}
	return m
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// describe renders a tool call as text: "restart_workload namespace=a name=b".
func describe(tool string, args map[string]any) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{tool}
	for _, k := range keys {
		if k == "content" {
			continue // file bodies would drown the words that name the action
		}
		parts = append(parts, k+"="+oneLine(fmt.Sprint(args[k]), 120))
	}
	return strings.Join(parts, " ")
}

func reasoning(class Class, tgt target, cited []Incident, total int, relief []string, score float64, rec Recommendation, th Thresholds) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Action class %s (prior %.2f)", class.Name, class.Prior)
	if tgt.namespace != "" || tgt.name != "" {
		fmt.Fprintf(&b, " on %s/%s", tgt.namespace, tgt.name)
	}
	b.WriteString(". ")
	if total == 0 {
		b.WriteString("No similar past incidents or failed outcomes. ")
	} else {
		fmt.Fprintf(&b, "Raised by %d similar past incident(s)/failed outcome(s): ", total)
		for i, inc := range cited {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s (%s, %s, similarity %.2f): %q", inc.ID, inc.Outcome, inc.When.Format("2006-01-02"), inc.Similarity, oneLine(inc.What, 120))
		}
		b.WriteString(". ")
	}
	if len(relief) > 0 {
		fmt.Fprintf(&b, "Lowered within its class by %s. ", strings.Join(relief, ", "))
	}
	fmt.Fprintf(&b, "Score %.2f → %s (auto < %.2f ≤ review < %.2f ≤ reject).", score, rec, th.Review, th.Reject)
	return b.String()
}

// RecordOutcome stores what happened when an action ran, in chat_history,
// so the next assessment of a similar action sees it.
func (s *Service) RecordOutcome(ctx context.Context, rec OutcomeRecord) error {
	rec.Action = strings.TrimSpace(rec.Action)
	if rec.Action == "" {
		return invalid("outcome: action is empty")
	}
	switch rec.Outcome {
	case OutcomeSucceeded, OutcomeFailed, OutcomeIncident:
	default:
		return invalid("outcome must be %s, %s or %s, got %q", OutcomeSucceeded, OutcomeFailed, OutcomeIncident, rec.Outcome)
	}
	if len(rec.Tool) > MaxKeyBytes {
		return invalid("outcome: tool is %d bytes, the limit is %d", len(rec.Tool), MaxKeyBytes)
	}
	if err := CheckTime("when", rec.When); err != nil {
		return invalid("outcome: %s", err)
	}
	if rec.When.IsZero() {
		rec.When = s.opts.Clock()
	}
	rec.When = rec.When.UTC()
	meta := map[string]string{"kind": "outcome", "outcome": rec.Outcome, "action": oneLine(rec.Action, 1000),
		"when": rec.When.Format(time.RFC3339), "class": Classify(rec.Action, rec.Tool, rec.Arguments).Name}
	if rec.Tool != "" {
		meta["tool"] = rec.Tool
	}
	if len(rec.Arguments) > 0 {
		b, err := json.Marshal(rec.Arguments)
		if err != nil {
			return invalid("outcome arguments: %s", err)
		}
		meta["arguments"] = oneLine(string(b), 2000)
		if ns := argString(rec.Arguments, "namespace"); ns != "" {
			meta["namespace"] = ns
		}
		if n := argString(rec.Arguments, "name"); n != "" {
			meta["name"] = n
		}
	}
	text := "Action: " + rec.Action
	if rec.Tool != "" {
		text += "\nTool call: " + describe(rec.Tool, rec.Arguments)
	}
	text += "\nOutcome: " + rec.Outcome
	if rec.Details != "" {
		text += "\nDetails: " + rec.Details
	}
	if rec.ID == "" {
		h := sha256.Sum256([]byte(rec.Action + "\x00" + rec.Tool + "\x00" + meta["arguments"] + "\x00" + rec.Outcome + "\x00" + rec.When.Format(time.RFC3339Nano)))
		rec.ID = "outcome-" + hex.EncodeToString(h[:8])
	}
	_, err := s.Ingest(ctx, IngestRequest{Collection: CollectionChat, Documents: []Document{{
		ID: rec.ID, Text: text, Metadata: meta, Cluster: rec.Cluster, CreatedAt: rec.When, UpdatedAt: rec.When,
	}}})
	return err
}
