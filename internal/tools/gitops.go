package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cluster-shepherd/shepherd/internal/answer"
	"github.com/cluster-shepherd/shepherd/internal/gitops"
	"github.com/cluster-shepherd/shepherd/internal/guard"
)

type gitopsIn struct {
	Operation     string `json:"operation" jsonschema:"read, create, update or delete"`
	FilePath      string `json:"file_path" jsonschema:"path inside the GitOps repository, relative, e.g. clusters/home/apps/immich/values.yaml"`
	Content       string `json:"content,omitempty" jsonschema:"the whole new file content, for create and update"`
	CommitMessage string `json:"commit_message,omitempty" jsonschema:"what the change does and why; required for create, update and delete"`
}

// gitopsTools declares gitops_change: persistent fixes as commits to the
// GitOps repository, which Flux then applies and does not undo.
func gitopsTools() []Tool {
	t := define(mcp.Tool{
		Name: "gitops_change",
		Description: "Read a file of the GitOps repository, or commit a change to it (create, update, delete) so that a fix " +
			"survives Flux's next reconciliation. Paths are relative and must lie inside the allowed directories; YAML must parse. " +
			"read is always allowed. create/update/delete run only after assess_risk returned auto for exactly this call, or after " +
			"a human approved the queued task; the answer gives the commit id and a link.",
		Annotations: writeAnnotations("GitOps change", true, false),
	}, true, gitopsChange)
	t.Needs = "gitops"
	t.validate = func(ctx context.Context, d *Deps, args map[string]any) error {
		in, err := decodeArgs[gitopsIn]("gitops_change", args)
		if err != nil {
			return err
		}
		op, err := prepareGitops(d, &in)
		if err == nil && op == gitops.OpRead {
			return badArg("gitops_change read needs no assessment or approval: call it directly")
		}
		return err
	}
	return []Tool{t}
}

// prepareGitops normalises a change and, unless it is a read, validates
// everything but the authorization, so a bad change never uses up an
// approval (and assess_risk refuses it too).
func prepareGitops(d *Deps, in *gitopsIn) (gitops.Operation, error) {
	op, err := gitops.ParseOperation(strings.ToLower(strings.TrimSpace(in.Operation)))
	if err != nil {
		return op, badArg("%s", err.Error())
	}
	p, err := d.GitOps.Guard.NormalizePath(in.FilePath)
	if err != nil {
		return op, badArg("file_path: %s", err.Error())
	}
	in.Operation, in.FilePath = string(op), p
	if op == gitops.OpRead {
		return op, nil
	}
	probe := gitops.Change{Operation: op, Path: p, Content: in.Content, Message: in.CommitMessage, TaskID: "pending"}
	if err := d.GitOps.Guard.Validate(probe); err != nil {
		return op, badArg("%s", err.Error())
	}
	return op, nil
}

func gitopsChange(ctx context.Context, d *Deps, in gitopsIn) (string, error) {
	op, err := prepareGitops(d, &in)
	if err != nil {
		return "", err
	}
	if op == gitops.OpRead {
		return gitopsRead(ctx, d, in)
	}
	p := in.FilePath
	args := argsMap(in)
	auth, err := d.Gate.Authorize(ctx, "gitops_change", args)
	if err != nil {
		var re *guard.RefusalError
		if errors.As(err, &re) {
			return "", &userError{re.Error()}
		}
		return "", fmt.Errorf("gitops_change refused: %w", err)
	}
	id := auth.TaskID
	if id == "" {
		id = auth.CallID
	}
	commit, runErr := d.GitOps.Apply(ctx, gitops.Change{Operation: op, Path: p, Content: in.Content, Message: in.CommitMessage, TaskID: id})
	result := ""
	if runErr == nil {
		result = fmt.Sprintf("%s %s committed as %s", op, p, commit.ID)
		if commit.URL != "" {
			result += " (" + commit.URL + ")"
		}
	}
	if ferr := d.Gate.Finish(ctx, auth, result, runErr); ferr != nil {
		d.Log.Error("finish write", "tool", "gitops_change", "err", ferr)
	}
	if runErr != nil {
		return "", gitopsErr(runErr)
	}
	return result, nil
}

func gitopsRead(ctx context.Context, d *Deps, in gitopsIn) (string, error) {
	start := time.Now()
	content, err := d.GitOps.Read(ctx, in.FilePath)
	rec := guard.AuditRecord{Tool: "gitops_change", Arguments: argsMap(in), Decision: guard.DecisionAllowed, DurationMS: time.Since(start).Milliseconds()}
	if err != nil {
		rec.Error = err.Error()
	}
	if aerr := d.Gate.Record(ctx, rec); aerr != nil {
		d.Log.Error("audit record", "tool", "gitops_change", "err", aerr)
	}
	if err != nil {
		return "", gitopsErr(err)
	}
	a := answer.New(d.MaxBytes)
	a.Linef("%s (%d bytes):", in.FilePath, len(content))
	for _, l := range strings.Split(content, "\n") {
		a.Line(l)
	}
	return a.String("lines", "a smaller file"), nil
}

// gitopsErr turns backend errors into what the model should do next.
func gitopsErr(err error) error {
	switch {
	case errors.Is(err, gitops.ErrNotFound):
		return badArg("%s (use create for a new file)", err.Error())
	case errors.Is(err, gitops.ErrExists):
		return badArg("%s (use update to change it)", err.Error())
	case errors.Is(err, gitops.ErrConflict):
		return badArg("%s: read the file again, then assess and retry", err.Error())
	case errors.Is(err, gitops.ErrInvalid):
		return badArg("%s", err.Error())
	}
	return fmt.Errorf("gitops_change: %w", err)
}
