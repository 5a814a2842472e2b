package guard

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// Level is a recommendation: Auto < Review < Reject.
type Level = cortex.Recommendation

// Levels of a recommendation, re-exported so callers need not import cortex.
const (
	Auto   = cortex.Auto
	Review = cortex.Review
	Reject = cortex.Reject
)

// rank orders recommendations; anything unknown counts as review so that a
// malformed answer can never lower the bar.
func rank(r cortex.Recommendation) int {
	switch r {
	case cortex.Auto:
		return 0
	case cortex.Reject:
		return 2
	default:
		return 1
	}
}

// maxRec returns the stricter of two recommendations.
func maxRec(a, b cortex.Recommendation) cortex.Recommendation {
	if rank(b) > rank(a) {
		return b
	}
	if rank(a) == 1 {
		return cortex.Review
	}
	return a
}

// Floor is a minimum recommendation with the reason a person will read.
type Floor struct {
	Min    cortex.Recommendation `json:"min"`
	Reason string                `json:"reason"`
}

// FloorConfig holds the deterministic rules; history may raise what they
// decide but never lower it.
type FloorConfig struct {
	// ProtectedNamespaces: any write there is at least review.
	ProtectedNamespaces []string
	// ProtectedGroups: deleting CRDs of these API groups (or a parent domain
	// of them) is at least review.
	ProtectedGroups []string
	// Deny entries are globs matched against the tool name and against
	// "tool:target" (target: namespace/name, CRD domain, node, or file path),
	// e.g. "run_node_cmd", "delete_crds:*.fluxcd.io", "scale_workload:prod/*".
	// A match is reject.
	Deny []string
}

// DefaultProtectedNamespaces are the namespaces whose workloads keep the
// cluster (and the shepherd itself) alive.
var DefaultProtectedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "flux-system"}

// DefaultProtectedGroups are API groups whose CRDs carry the cluster's own
// machinery.
var DefaultProtectedGroups = []string{"toolkit.fluxcd.io", "apiextensions.k8s.io", "k8s.io", "x-k8s.io", "cert-manager.io", "monitoring.coreos.com"}

// DefaultFloors returns the default rules, protecting selfNamespace too.
func DefaultFloors(selfNamespace string) FloorConfig {
	ns := append([]string(nil), DefaultProtectedNamespaces...)
	if selfNamespace != "" {
		ns = append(ns, selfNamespace)
	}
	return FloorConfig{ProtectedNamespaces: ns, ProtectedGroups: append([]string(nil), DefaultProtectedGroups...)}
}

// Validate reports deny patterns that path.Match cannot parse.
func (c FloorConfig) Validate() error {
	for _, p := range c.Deny {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("deny pattern %q: %w", p, err)
		}
	}
	return nil
}

// Floors returns every rule that applies to a tool call. args should be the
// call's arguments after defaults; unknown tools get only the deny list.
func (c FloorConfig) Floors(tool string, args map[string]any) []Floor {
	var out []Floor
	if tool == "" {
		return nil
	}
	target := targetOf(tool, args)
	for _, p := range c.Deny {
		// Kubernetes names and domains are lower case: a rule or an argument
		// spelled otherwise still names the same thing. (For file paths this
		// only denies more.)
		if globMatch(p, tool) || (target != "" && (globMatch(p, tool+":"+target) || globMatch(strings.ToLower(p), strings.ToLower(tool+":"+target)))) || deniesSubdomain(p, tool, args) {
			out = append(out, Floor{Min: cortex.Reject, Reason: fmt.Sprintf("denied by policy (rule %q)", p)})
		}
	}
	ns := strings.ToLower(strings.TrimSpace(argString(args, "namespace")))
	if ns != "" && containsFold(c.ProtectedNamespaces, ns) {
		out = append(out, Floor{Min: cortex.Review, Reason: fmt.Sprintf("namespace %s is protected", ns)})
	}
	switch tool {
	case "scale_workload":
		if r, ok := argNumber(args, "replicas"); !ok || r <= 0 {
			out = append(out, Floor{Min: cortex.Review, Reason: "scaling to 0 replicas stops the workload"})
		}
	case "run_flux_op":
		if strings.EqualFold(argString(args, "operation"), "suspend") {
			out = append(out, Floor{Min: cortex.Review, Reason: "suspending Flux stops reconciliation from Git"})
		}
	case "delete_crds":
		out = append(out, Floor{Min: cortex.Review, Reason: "deleting CRDs deletes every custom resource of them"})
		d := crdDomain(args)
		for _, g := range c.ProtectedGroups {
			g = strings.ToLower(g)
			if d == "" || domainOverlaps(d, g) {
				out = append(out, Floor{Min: cortex.Review, Reason: fmt.Sprintf("API group %s is protected", g)})
			}
		}
	}
	return out
}

// deniesSubdomain is true when a delete_crds deny rule names groups that
// deleting the call's domain would take with it: delete_crds removes the
// domain and all its subdomains, so "delete_crds:*.fluxcd.io" (or
// "delete_crds:toolkit.fluxcd.io", or "delete_crds:toolkit.*.io") must also
// deny domain "fluxcd.io". Domains are case-insensitive, and so is the rule.
func deniesSubdomain(pattern, tool string, args map[string]any) bool {
	rest, ok := strings.CutPrefix(pattern, "delete_crds:")
	if tool != "delete_crds" || !ok {
		return false
	}
	d := crdDomain(args)
	if d == "" {
		return false
	}
	rest = strings.ToLower(rest)
	if globMatch(rest, d) {
		return true
	}
	// Some subdomain x.d matches rest if a tail of rest, starting at a
	// token boundary, matches ".d" and the head before it can match x (any
	// non-empty head can; a "*" can also reach back into x itself).
	suffix := "." + d
	for _, k := range globTokenStarts(rest) {
		if (k > 0 || strings.HasPrefix(rest, "*")) && globMatch(rest[k:], suffix) {
			return true
		}
	}
	return false
}

// globTokenStarts returns the offsets at which a path.Match token (a
// character, an escape, a class or a star) begins.
func globTokenStarts(p string) []int {
	var out []int
	for i := 0; i < len(p); {
		out = append(out, i)
		switch p[i] {
		case '\\':
			i += 2
		case '[':
			j := i + 1
			for j < len(p) && p[j] != ']' {
				if p[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		default:
			_, n := utf8.DecodeRuneInString(p[i:])
			i += n
		}
	}
	return out
}

// crdDomain is the domain of a delete_crds call as the tool will use it.
func crdDomain(args map[string]any) string {
	return strings.ToLower(strings.Trim(argString(args, "domain"), ". "))
}

// domainOverlaps is true when deleting domain d would touch group g or the
// reverse: d equal to g, d a parent of g, or g a parent of d.
func domainOverlaps(d, g string) bool {
	return d == g || strings.HasSuffix(g, "."+d) || strings.HasSuffix(d, "."+g)
}

func targetOf(tool string, args map[string]any) string {
	switch tool {
	case "delete_crds":
		return crdDomain(args)
	case "run_node_cmd":
		return argString(args, "node")
	case "gitops_change":
		return argString(args, "file_path")
	}
	ns, name := strings.TrimSpace(argString(args, "namespace")), strings.TrimSpace(argString(args, "name"))
	if ns != "" || name != "" {
		return ns + "/" + name
	}
	return ""
}

func globMatch(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	if err != nil {
		// A broken pattern must not silently allow: treat it as matching
		// everything it could plausibly mean, i.e. its literal text.
		return pattern == s
	}
	return ok
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

func argString(args map[string]any, k string) string {
	if s, ok := args[k].(string); ok {
		return s
	}
	return ""
}

func argNumber(args map[string]any, k string) (float64, bool) {
	switch v := args[k].(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case int32:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	}
	return 0, false
}
