package guard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AdminHandler serves out-of-band approval for the CLI or a web page, on its
// own admin token so that the model's MCP token can never approve:
//
//	GET  /admin/tasks?state=pending|approved|…|all
//	GET  /admin/tasks/{id}
//	POST /admin/tasks/{id}/approve   body {"by": "alice"} (optional)
//	POST /admin/tasks/{id}/reject    body {"by": "alice"} (optional)
//
// With an empty token every request is refused.
func AdminHandler(g *Gate, adminToken string) http.Handler {
	a := &admin{g: g, sum: sha256.Sum256([]byte(adminToken)), enabled: adminToken != ""}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/tasks", a.list)
	mux.HandleFunc("GET /admin/tasks/{id}", a.get)
	mux.HandleFunc("POST /admin/tasks/{id}/approve", a.decide(true))
	mux.HandleFunc("POST /admin/tasks/{id}/reject", a.decide(false))
	return a.auth(mux)
}

type admin struct {
	g       *Gate
	sum     [32]byte
	enabled bool
}

func (a *admin) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.enabled {
			writeErr(w, http.StatusServiceUnavailable, "admin approval is disabled: no admin token is configured")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Comparing hashes keeps the comparison constant-time even in length.
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || subtle.ConstantTimeCompare(got[:], a.sum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shepherd-admin"`)
			writeErr(w, http.StatusUnauthorized, "missing or wrong admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *admin) list(w http.ResponseWriter, r *http.Request) {
	q := Query{Kind: KindTask, States: []State{StatePending}}
	switch st := r.URL.Query().Get("state"); st {
	case "", string(StatePending):
	case "all":
		q.States = nil
	case string(StateApproved), string(StateExecuting), string(StateDone), string(StateFailed), string(StateRejected), string(StateExpired):
		q.States = []State{State(st)}
	default:
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("unknown state %q", st))
		return
	}
	ts, err := a.g.List(r.Context(), q)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]Task, len(ts))
	for i, t := range ts {
		out[i] = MaskedTask(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": out})
}

func (a *admin) get(w http.ResponseWriter, r *http.Request) {
	t, err := a.g.Get(r.Context(), r.PathValue("id"))
	if err == nil && t.Kind != KindTask {
		err = ErrNotFound
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MaskedTask(t))
}

func (a *admin) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			By string `json:"by"`
		}
		if r.ContentLength != 0 {
			if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
				writeErr(w, http.StatusBadRequest, "body must be JSON like {\"by\": \"alice\"}")
				return
			}
		}
		by := strings.TrimSpace(body.By)
		if by == "" {
			by = "admin"
		}
		by = "admin:" + truncate(by, 64)
		ctx := WithClient(r.Context(), by)
		var t Task
		var err error
		if approve {
			t, err = a.g.Approve(ctx, r.PathValue("id"), by, ChannelAdmin)
		} else {
			t, err = a.g.Reject(ctx, r.PathValue("id"), by)
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, MaskedTask(t))
	}
}

func (a *admin) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeErr(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict), errors.Is(err, ErrExpired):
		writeErr(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrDenied):
		writeErr(w, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrBadRequest):
		writeErr(w, http.StatusBadRequest, err.Error())
	default:
		a.g.log.Error("admin request failed", "err", err)
		writeErr(w, http.StatusInternalServerError, "internal error; see the server log")
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": MaskText(msg)})
}

// MaskedTask returns t with secret-looking argument values masked, for
// showing to people and to the model.
func MaskedTask(t Task) Task {
	if len(t.Arguments) == 0 {
		return t
	}
	b, err := json.Marshal(MaskArgs(t.Args()))
	if err != nil {
		t.Arguments = nil
		return t
	}
	t.Arguments = b
	return t
}

// AdminClient is what `shepherd tasks list|approve|reject` uses.
type AdminClient struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Token   string
	HTTP    *http.Client // nil: a client with a 30 s timeout
}

// List returns tasks in state ("" for pending, "all" for every state).
func (c *AdminClient) List(ctx context.Context, state string) ([]Task, error) {
	path := "/admin/tasks"
	if state != "" {
		path += "?state=" + url.QueryEscape(state)
	}
	var out struct {
		Tasks []Task `json:"tasks"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return out.Tasks, nil
}

// Approve approves task id as by.
func (c *AdminClient) Approve(ctx context.Context, id, by string) (Task, error) {
	var t Task
	err := c.do(ctx, http.MethodPost, "/admin/tasks/"+url.PathEscape(id)+"/approve", map[string]string{"by": by}, &t)
	if err != nil {
		return Task{}, fmt.Errorf("approve %s: %w", id, err)
	}
	return t, nil
}

// Reject rejects task id as by.
func (c *AdminClient) Reject(ctx context.Context, id, by string) (Task, error) {
	var t Task
	err := c.do(ctx, http.MethodPost, "/admin/tasks/"+url.PathEscape(id)+"/reject", map[string]string{"by": by}, &t)
	if err != nil {
		return Task{}, fmt.Errorf("reject %s: %w", id, err)
	}
	return t, nil
}

// AdminError is a non-2xx answer from the admin endpoint.
type AdminError struct {
	Status  int
	Message string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is maps HTTP statuses back to the gate's errors.
func (e *AdminError) Is(target error) bool {
	switch e.Status {
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	case http.StatusForbidden:
		return target == ErrDenied
	}
	return false
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = truncate(strings.TrimSpace(string(raw)), 200)
		}
		return &AdminError{Status: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
