package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cluster-shepherd/shepherd/internal/cluster"
	"github.com/cluster-shepherd/shepherd/internal/cortex"
	"github.com/cluster-shepherd/shepherd/internal/guard"
)

type workloadIn struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the workload"`
	Name      string `json:"name" jsonschema:"exact name of the Deployment or StatefulSet (see list_workloads)"`
	Kind      string `json:"kind" jsonschema:"Deployment or StatefulSet"`
}

type scaleIn struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the workload"`
	Name      string `json:"name" jsonschema:"exact name of the Deployment or StatefulSet"`
	Replicas  int    `json:"replicas" jsonschema:"desired replicas, 0 or more; 0 stops the workload"`
	Kind      string `json:"kind,omitempty" jsonschema:"Deployment or StatefulSet; found by name when omitted"`
}

type fluxOpIn struct {
	Operation string `json:"operation" jsonschema:"suspend, resume or reconcile"`
	Namespace string `json:"namespace" jsonschema:"namespace of the Kustomization (often flux-system)"`
	Name      string `json:"name" jsonschema:"name of the Kustomization (see get_flux_status)"`
}

type crdsIn struct {
	Domain string `json:"domain" jsonschema:"API group whose CRDs to delete, e.g. longhorn.io (its subdomains are included)"`
}

// writeAnnotations mark a tool that changes the cluster.
func writeAnnotations(title string, destructive, idempotent bool) *mcp.ToolAnnotations {
	return &mcp.ToolAnnotations{Title: title, DestructiveHint: ptr(destructive), IdempotentHint: idempotent, OpenWorldHint: ptr(false)}
}

const gated = " Runs only after assess_risk returned auto for exactly this call, or after a human approved the queued task (queue_task); otherwise it is refused and says what to do."

func actTools() []Tool {
	return []Tool{
		defineWrite(mcp.Tool{
			Name:        "restart_workload",
			Description: "Rolling restart of a Deployment or StatefulSet, as `kubectl rollout restart` does (stamps the pod template; pods are replaced one by one)." + gated,
			Annotations: writeAnnotations("Restart workload", true, false),
		}, restartWorkload),
		defineWrite(mcp.Tool{
			Name:        "scale_workload",
			Description: "Set the replica count of a Deployment or StatefulSet through its scale subresource. Scaling to 0 stops it." + gated,
			Annotations: writeAnnotations("Scale workload", true, true),
		}, scaleWorkload),
		defineWrite(mcp.Tool{
			Name: "run_flux_op",
			Description: "Suspend, resume or reconcile a Flux Kustomization. Suspend stops Flux from applying Git; " +
				"reconcile asks Flux to sync now (reconcile.fluxcd.io/requestedAt)." + gated,
			Annotations: writeAnnotations("Flux operation", true, true),
		}, fluxOp),
		defineWrite(mcp.Tool{
			Name: "delete_crds",
			Description: "Delete every CustomResourceDefinition of one API group and its subdomains, and with them all their " +
				"custom resources. For leftovers of an uninstalled operator whose conversion webhook now breaks listing. " +
				"The answer says how many CRDs and custom resources went." + gated,
			Annotations: writeAnnotations("Delete CRDs", true, false),
		}, deleteCRDs),
	}
}

// writeHandler validates and normalises its input (returning the canonical
// arguments the gate keys on) and, once authorized, runs.
type writeHandler[In any] struct {
	prepare func(ctx context.Context, d *Deps, in *In) error
	run     func(ctx context.Context, d *Deps, in In) (string, error)
}

// defineWrite wraps a write: validate → authorize (consumes one
// authorization for exactly these arguments) → run → finish (audit and
// outcome to Cortex). Nothing runs when the audit record cannot be written.
func defineWrite[In any](def mcp.Tool, w writeHandler[In]) Tool {
	t := define(def, true, func(ctx context.Context, d *Deps, in In) (string, error) {
		if d.Gate == nil {
			return "", errors.New("writes are disabled: no risk gate is configured")
		}
		if err := w.prepare(ctx, d, &in); err != nil {
			return "", err
		}
		args := argsMap(in)
		auth, err := d.Gate.Authorize(ctx, def.Name, args)
		if err != nil {
			var re *guard.RefusalError
			if errors.As(err, &re) {
				return "", &userError{re.Error()}
			}
			return "", fmt.Errorf("%s refused: %w", def.Name, err)
		}
		result, runErr := w.run(ctx, d, in)
		if ferr := d.Gate.Finish(ctx, auth, result, runErr); ferr != nil {
			d.Log.Error("finish write", "tool", def.Name, "err", ferr)
		}
		if runErr != nil {
			return "", runErr
		}
		return result, nil
	})
	t.Needs = "gate"
	t.validate = func(ctx context.Context, d *Deps, args map[string]any) error {
		in, err := decodeArgs[In](def.Name, args)
		if err != nil {
			return err
		}
		return w.prepare(ctx, d, &in)
	}
	return t
}

// decodeArgs turns the arguments given to assess_risk or queue_task for a
// tool into that tool's input, refusing what a call would: missing required
// fields, unknown fields and wrong types.
func decodeArgs[In any](tool string, args map[string]any) (In, error) {
	var in In
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		return in, fmt.Errorf("schema of %s: %w", tool, err)
	}
	for _, r := range schema.Required {
		if _, ok := args[r]; !ok {
			return in, badArg("arguments for %s: %s is required", tool, r)
		}
	}
	b, err := json.Marshal(args)
	if err != nil {
		return in, badArg("arguments for %s: %s", tool, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, badArg("arguments for %s: %s", tool, err)
	}
	return in, nil
}

func checkName(what, name string) error {
	if name == "" {
		return badArg("%s is required", what)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return badArg("invalid %s %q: %s", what, name, errs[0])
	}
	return nil
}

func notFound(err error) error {
	var nf *cluster.ErrNotFound
	if errors.As(err, &nf) {
		return badArg("%s not found", nf.What)
	}
	return err
}

var restartWorkload = writeHandler[workloadIn]{
	prepare: func(ctx context.Context, d *Deps, in *workloadIn) error {
		if err := checkNamespace(d, in.Namespace, true); err != nil {
			return err
		}
		if err := checkName("name", in.Name); err != nil {
			return err
		}
		k := cluster.NormalizeKind(in.Kind)
		if k == "" {
			return badArg("kind %q: want Deployment or StatefulSet", in.Kind)
		}
		in.Kind = k
		_, err := d.Cache.Replicas(k, in.Namespace, in.Name)
		return notFound(err)
	},
	run: func(ctx context.Context, d *Deps, in workloadIn) (string, error) {
		stamp, err := d.Cache.Restart(ctx, in.Kind, in.Namespace, in.Name, d.now())
		if err != nil {
			return "", notFound(err)
		}
		return fmt.Sprintf("restarted %s %s/%s: pod template stamped %s=%s; pods roll over now", in.Kind, in.Namespace, in.Name, cluster.RestartedAtAnnotation, stamp), nil
	},
}

var scaleWorkload = writeHandler[scaleIn]{
	prepare: func(ctx context.Context, d *Deps, in *scaleIn) error {
		if err := checkNamespace(d, in.Namespace, true); err != nil {
			return err
		}
		if err := checkName("name", in.Name); err != nil {
			return err
		}
		if in.Replicas < 0 || in.Replicas > 1000 {
			return badArg("replicas must be between 0 and 1000, got %d", in.Replicas)
		}
		k, err := resolveKind(d, in.Kind, in.Namespace, in.Name)
		in.Kind = k
		return err
	},
	run: func(ctx context.Context, d *Deps, in scaleIn) (string, error) {
		prev, err := d.Cache.Scale(ctx, in.Kind, in.Namespace, in.Name, int32(in.Replicas))
		if err != nil {
			return "", notFound(err)
		}
		return fmt.Sprintf("scaled %s %s/%s from %d to %d replicas", in.Kind, in.Namespace, in.Name, prev, in.Replicas), nil
	},
}

// resolveKind normalises a kind, or finds it by name when empty.
func resolveKind(d *Deps, kind, ns, name string) (string, error) {
	if kind == "" {
		k, err := d.Cache.ResolveKind(ns, name)
		return k, notFound(err)
	}
	k := cluster.NormalizeKind(kind)
	if k == "" {
		return "", badArg("kind %q: want Deployment or StatefulSet", kind)
	}
	_, err := d.Cache.Replicas(k, ns, name)
	return k, notFound(err)
}

var fluxOp = writeHandler[fluxOpIn]{
	prepare: func(ctx context.Context, d *Deps, in *fluxOpIn) error {
		in.Operation = strings.ToLower(strings.TrimSpace(in.Operation))
		switch in.Operation {
		case cluster.FluxSuspend, cluster.FluxResume, cluster.FluxReconcile:
		default:
			return badArg("operation %q: want suspend, resume or reconcile", in.Operation)
		}
		if err := checkNamespace(d, in.Namespace, true); err != nil {
			return err
		}
		if err := checkName("name", in.Name); err != nil {
			return err
		}
		ks, err := d.Cache.Kustomizations(in.Namespace)
		if errors.Is(err, cluster.ErrFluxMissing) || errors.Is(err, cluster.ErrFluxUnlisted) {
			return badArg("%s", err.Error())
		}
		if err != nil {
			return err
		}
		for _, k := range ks {
			if k.Name == in.Name {
				return nil
			}
		}
		return badArg("Kustomization %s/%s not found (see get_flux_status)", in.Namespace, in.Name)
	},
	run: func(ctx context.Context, d *Deps, in fluxOpIn) (string, error) {
		res, err := d.Cache.FluxOp(ctx, in.Operation, in.Namespace, in.Name, d.now())
		if err != nil {
			return "", notFound(err)
		}
		return fmt.Sprintf("Kustomization %s/%s %s", in.Namespace, in.Name, res), nil
	},
}

var deleteCRDs = writeHandler[crdsIn]{
	prepare: func(ctx context.Context, d *Deps, in *crdsIn) error {
		in.Domain = strings.ToLower(strings.TrimSpace(in.Domain))
		if err := cluster.ValidateDomain(in.Domain); err != nil {
			return badArg("%s", err.Error())
		}
		return nil
	},
	run: func(ctx context.Context, d *Deps, in crdsIn) (string, error) {
		inv, err := d.Cache.DeleteCRDs(ctx, in.Domain)
		if err != nil {
			return "", notFound(err)
		}
		msg := fmt.Sprintf("deleted %d CRDs of %s (%s) and %d custom resources with them", len(inv.CRDs), in.Domain, strings.Join(inv.CRDs, ", "), inv.Resources)
		if len(inv.Unlisted) > 0 {
			msg += fmt.Sprintf("; %d CRDs could not be counted first", len(inv.Unlisted))
		}
		if len(inv.Terminating) > 0 {
			msg += "; still terminating: " + strings.Join(inv.Terminating, ", ")
		}
		return msg, nil
	},
}

// crdFacts are the floors delete_crds adds from the live cluster: existing
// custom resources are data that would be lost.
func crdFacts(ctx context.Context, d *Deps, domain string) ([]guard.Floor, error) {
	inv, err := d.Cache.CRDsOf(ctx, domain)
	if err != nil {
		return nil, err
	}
	var facts []guard.Floor
	if len(inv.CRDs) == 0 {
		facts = append(facts, guard.Floor{Min: cortex.Review, Reason: fmt.Sprintf("no CRDs of API group %s exist", domain)})
	}
	if inv.Resources > 0 {
		facts = append(facts, guard.Floor{Min: cortex.Review, Reason: fmt.Sprintf("%d custom resources of %s still exist and would be deleted with %d CRDs", inv.Resources, domain, len(inv.CRDs))})
	}
	for _, u := range inv.Unlisted {
		facts = append(facts, guard.Floor{Min: cortex.Review, Reason: "custom resources could not be counted: " + u})
	}
	return facts, nil
}

// Defaults normalises a write tool's arguments the way the tool itself will
// (kind spelling, kind found by name), so that an assessment or task made
// from the model's arguments matches the later call exactly.
func Defaults(d *Deps) func(tool string, args map[string]any) map[string]any {
	return func(tool string, args map[string]any) map[string]any {
		str := func(k string) string { s, _ := args[k].(string); return s }
		switch tool {
		case "restart_workload":
			if k := cluster.NormalizeKind(str("kind")); k != "" {
				args["kind"] = k
			}
		case "scale_workload":
			if str("kind") == "" {
				if k, err := d.Cache.ResolveKind(str("namespace"), str("name")); err == nil {
					args["kind"] = k
				}
			} else if k := cluster.NormalizeKind(str("kind")); k != "" {
				args["kind"] = k
			}
		case "run_flux_op":
			args["operation"] = strings.ToLower(strings.TrimSpace(str("operation")))
		case "delete_crds":
			args["domain"] = strings.ToLower(strings.TrimSpace(str("domain")))
		case "gitops_change":
			args["operation"] = strings.ToLower(strings.TrimSpace(str("operation")))
			if d.GitOps != nil {
				if p, err := d.GitOps.Guard.NormalizePath(str("file_path")); err == nil {
					args["file_path"] = p
				}
			}
		case "run_node_cmd":
			if d.Nodes != nil {
				if argv, err := d.Nodes.Allowlist().Check(str("command")); err == nil {
					args["command"] = canonicalCommand(argv, str("command"))
				}
			}
		}
		return args
	}
}
