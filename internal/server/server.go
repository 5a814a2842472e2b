// Package server exposes shepherd's MCP server over HTTP (Streamable HTTP at
// /mcp, the legacy HTTP+SSE transport at /sse) with bearer-token auth, plus
// /healthz, /readyz and Prometheus /metrics on the same listener.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the HTTP listener.
type Options struct {
	Listen         string
	Token          string // bearer token for /mcp and /sse; empty means none
	InsecureNoAuth bool   // allow a non-loopback listener without a token
	Ready          func() bool
	Gatherer       prometheus.Gatherer
	Log            *slog.Logger
	// Extra routes (the admin API, say) mounted beside the MCP endpoints;
	// they bring their own auth.
	Extra map[string]http.Handler
	// SessionIdleTimeout closes Streamable HTTP sessions that sent nothing
	// for this long, so clients that vanish without a DELETE do not pile up;
	// a client then gets 404 and starts a new session. 0 keeps them forever.
	SessionIdleTimeout time.Duration
	// TokenFile, when set, is where Token came from: the token is re-read
	// when the file changes (a rotated Kubernetes Secret) without a restart.
	// A file that turns empty or unreadable keeps the last token.
	TokenFile string
}

// CheckListen refuses to serve without a token on an address other hosts
// can reach, unless insecure is set, and says why.
func CheckListen(addr, token string, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	if token != "" || insecure || IsLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without authentication: anyone who can reach it could operate the cluster. "+
		"Set a bearer token with --auth-token-file or SHEPHERD_AUTH_TOKEN, listen on 127.0.0.1, or pass --insecure-no-auth if something in front of shepherd authenticates", addr)
}

// IsLoopback reports whether host only accepts local connections.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handler builds the mux for one MCP server.
func Handler(s *mcp.Server, o Options) http.Handler {
	get := func(*http.Request) *mcp.Server { return s }
	mux := http.NewServeMux()
	streamable := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Logger: o.Log, SessionTimeout: o.SessionIdleTimeout})
	sse := mcp.NewSSEHandler(get, nil)
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	tok := newTokenSource(o.Token, o.TokenFile, log)
	mux.Handle("/mcp", bearer(tok, streamable))
	mux.Handle("/mcp/", bearer(tok, streamable))
	// The SSE client POSTs its messages to the endpoint the GET announced
	// (same path, ?sessionid=); /message is accepted too for clients that
	// were configured with the older two-path layout.
	mux.Handle("/sse", bearer(tok, sse))
	mux.Handle("/message", bearer(tok, sse))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil && !o.Ready() {
			http.Error(w, "not ready: the cluster cache has not synced yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if o.Gatherer != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	for path, h := range o.Extra {
		mux.Handle(path, h)
	}
	return mux
}

// Bearer requires "Authorization: Bearer <token>" on next when token is
// set; other services of shepherd (Cortex) use it too.
func Bearer(token string, next http.Handler) http.Handler {
	return bearer(&tokenSource{token: token}, next)
}

// tokenSource is the bearer token, re-read from its file when that changes.
type tokenSource struct {
	file string
	log  *slog.Logger

	mu      sync.Mutex
	token   string
	checked time.Time
	mod     time.Time
	size    int64
}

func newTokenSource(token, file string, log *slog.Logger) *tokenSource {
	s := &tokenSource{token: token, file: file, log: log}
	if fi, err := os.Stat(file); file != "" && err == nil {
		s.mod, s.size = fi.ModTime(), fi.Size()
	}
	return s
}

// current returns the token, looking at the file at most once a second.
func (s *tokenSource) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == "" || time.Since(s.checked) < time.Second {
		return s.token
	}
	s.checked = time.Now()
	fi, err := os.Stat(s.file)
	if err != nil || fi.ModTime().Equal(s.mod) && fi.Size() == s.size {
		return s.token
	}
	s.mod, s.size = fi.ModTime(), fi.Size()
	b, err := os.ReadFile(s.file)
	t := strings.TrimSpace(string(b))
	if err != nil || t == "" {
		// Never fall back to no auth: keep the last token until a good one.
		s.log.Warn("bearer token file changed but is unreadable or empty; keeping the previous token", "file", s.file)
		return s.token
	}
	if t != s.token {
		s.token = t
		s.log.Info("bearer token reloaded", "file", s.file)
	}
	return s.token
}

// bearer requires "Authorization: Bearer <token>" when a token is set. The
// comparison is constant-time; failures never echo what was sent.
func bearer(src *tokenSource, next http.Handler) http.Handler {
	if src.token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(src.current())) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cluster-shepherd"`)
			msg := "missing bearer token: send Authorization: Bearer <token>"
			if ok {
				msg = "invalid bearer token"
			}
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Serve listens on o.Listen and serves h until ctx ends. ready, if not nil,
// receives the bound address (useful with port 0).
func Serve(ctx context.Context, h http.Handler, o Options, ready chan<- string) error {
	if err := CheckListen(o.Listen, o.Token, o.InsecureNoAuth); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	log.Info("serving MCP", "addr", ln.Addr().String(), "streamable", "/mcp", "sse", "/sse", "auth", o.Token != "")
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if errors.Is(err, context.DeadlineExceeded) {
			// SSE streams stay open until closed; cut them.
			err = srv.Close()
		}
		return err
	}
}
