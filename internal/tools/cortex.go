package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cluster-shepherd/shepherd/internal/answer"
	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

type queryIn struct {
	Query       string   `json:"query" jsonschema:"the question or error text to look up, e.g. 'authentik outage after restart'"`
	TopK        int      `json:"top_k,omitempty" jsonschema:"how many hits, default 5, at most 20"`
	Collections []string `json:"collections,omitempty" jsonschema:"any of cluster_events, chat_history, manifests, documentation; default all"`
}

func cortexTools() []Tool {
	t := define(mcp.Tool{
		Name: "query_cortex",
		Description: "Search this cluster's memory: past Warning events, earlier conversations and the outcomes of actions, " +
			"GitOps manifests and runbooks. Returns ranked hits and a merged context block with verified solutions first. " +
			"Use it before acting, to cite what happened here before.",
		Annotations: readOnly("Query cluster memory"),
	}, false, queryCortex)
	t.Needs = "cortex"
	return []Tool{t}
}

func queryCortex(ctx context.Context, d *Deps, in queryIn) (string, error) {
	if strings.TrimSpace(in.Query) == "" {
		return "", badArg("query is required")
	}
	switch {
	case in.TopK == 0:
		in.TopK = 5
	case in.TopK < 0 || in.TopK > 20:
		return "", badArg("top_k must be between 1 and 20")
	}
	for _, c := range in.Collections {
		if !validCollection(c) {
			return "", badArg("unknown collection %q; collections are %s", c, strings.Join(cortex.Collections, ", "))
		}
	}
	res, err := d.Memory.Query(ctx, cortex.QueryRequest{Query: in.Query, TopK: in.TopK, Collections: in.Collections})
	if errors.Is(err, cortex.ErrInvalid) {
		return "", badArg("%s", err.Error())
	}
	if err != nil {
		return "", fmt.Errorf("query_cortex: cortex unavailable: %w", err)
	}
	a := answer.New(d.MaxBytes)
	a.Linef("%d hits for %q", len(res.Hits), answer.Clip(in.Query, 100))
	for i, h := range res.Hits {
		src := h.Source
		if src == "" {
			src = h.Collection + "/" + h.ID
		}
		where := ""
		if h.Cluster != "" && h.Cluster != d.Cluster {
			// A shared Cortex remembers other clusters too: say so.
			where = " cluster " + h.Cluster
		}
		a.Linef("%d. [%s %.3f%s] %s: %s", i+1, h.Collection, h.Score, where, src, answer.Clip(h.Text, 300))
	}
	if res.MergedContext != "" {
		a.Line("merged_context:")
		for _, l := range strings.Split(res.MergedContext, "\n") {
			a.Line(l)
		}
	}
	return a.String("lines", "top_k=<n> or collections=[...]"), nil
}

func validCollection(c string) bool {
	for _, x := range cortex.Collections {
		if c == x {
			return true
		}
	}
	return false
}

// ValidateDomainArg checks delete_crds' domain argument.
func ValidateDomainArg(domain string) error {
	if err := cluster.ValidateDomain(strings.ToLower(strings.TrimSpace(domain))); err != nil {
		return badArg("%s", err.Error())
	}
	return nil
}
