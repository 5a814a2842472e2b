package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LogServer stands in for the kubelet's log endpoint: no kubelet can run here,
// but the API server proxies pods/log to whatever the Node advertises, so a
// Node pointed at this server makes GetLogs take the API server's real path.
type LogServer struct {
	// Addr is host:port of the HTTPS listener on 127.0.0.1.
	Addr string
	// Port is the listening port, to put in a Node's kubelet endpoint.
	Port int32

	srv  *http.Server
	mu   sync.RWMutex
	logs map[string][]string
	errs map[string]logError
	// started is when the fake containers "wrote" their lines, for timestamps=true.
	started time.Time
}

// PreviousSuffix marks the key of a container's previous (terminated) log.
const PreviousSuffix = "#previous"

// LogKey returns the key StartLogServer expects for a container's log.
func LogKey(namespace, pod, container string, previous bool) string {
	k := namespace + "/" + pod + "/" + container
	if previous {
		k += PreviousSuffix
	}
	return k
}

// StartLogServer serves /containerLogs/{namespace}/{pod}/{container} over
// HTTPS with a self-signed certificate; logs is keyed by LogKey.
func StartLogServer(logs map[string][]string) (*LogServer, error) {
	cert, err := selfSignedCert()
	if err != nil {
		return nil, fmt.Errorf("log server certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("log server listen: %w", err)
	}
	s := &LogServer{
		Addr:    ln.Addr().String(),
		Port:    int32(ln.Addr().(*net.TCPAddr).Port),
		logs:    make(map[string][]string, len(logs)),
		errs:    map[string]logError{},
		started: time.Now().Add(-time.Hour),
	}
	for k, v := range logs {
		s.logs[k] = append([]string(nil), v...)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.containerLogs)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          nil,
	}
	go func() { _ = s.srv.Serve(tls.NewListener(ln, s.srv.TLSConfig)) }()
	return s, nil
}

type logError struct {
	code int
	msg  string
}

// SetError makes a container's log answer with an HTTP error, as the kubelet
// does for a container that never started ("is waiting to start: ...").
func (s *LogServer) SetError(key string, code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[key] = logError{code, msg}
}

// SetLog replaces (or adds) the lines of one container log.
func (s *LogServer) SetLog(key string, lines []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs[key] = append([]string(nil), lines...)
}

// Close stops the server.
func (s *LogServer) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop log server: %w", err)
	}
	return nil
}

// containerLogs answers as the kubelet does: 404 for an unknown pod or
// container, 400 when there is no previous container, plain text otherwise.
func (s *LogServer) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	previous, _ := strconv.ParseBool(q.Get("previous"))
	timestamps, _ := strconv.ParseBool(q.Get("timestamps"))

	s.mu.RLock()
	if e, bad := s.errs[LogKey(ns, pod, container, previous)]; bad {
		s.mu.RUnlock()
		kubeletError(w, e.msg, e.code)
		return
	}
	lines, ok := s.logs[LogKey(ns, pod, container, previous)]
	podKnown, containerKnown := ok, ok
	if !ok {
		prefix := ns + "/" + pod + "/"
		for k := range s.logs {
			if strings.HasPrefix(k, prefix) {
				podKnown = true
				if strings.TrimSuffix(strings.TrimPrefix(k, prefix), PreviousSuffix) == container {
					containerKnown = true
				}
			}
		}
	}
	lines = append([]string(nil), lines...)
	s.mu.RUnlock()

	switch {
	case !podKnown:
		kubeletError(w, fmt.Sprintf("pod %q does not exist", pod), http.StatusNotFound)
		return
	case !containerKnown:
		kubeletError(w, fmt.Sprintf("container %q not found in pod %q", container, pod), http.StatusNotFound)
		return
	case !ok && previous:
		kubeletError(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod), http.StatusBadRequest)
		return
	}

	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			kubeletError(w, fmt.Sprintf("invalid tailLines %q", v), http.StatusBadRequest)
			return
		}
		if n < len(lines) {
			lines = lines[len(lines)-n:]
		}
	}
	limit := -1
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			kubeletError(w, fmt.Sprintf("invalid limitBytes %q", v), http.StatusBadRequest)
			return
		}
		limit = n
	}
	var b strings.Builder
	for i, l := range lines {
		if timestamps {
			b.WriteString(s.started.Add(time.Duration(i) * time.Second).UTC().Format(time.RFC3339Nano))
			b.WriteByte(' ')
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	out := b.String()
	if limit >= 0 && limit < len(out) {
		out = out[:limit]
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(out))
}

func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kubelet-standin"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour * 365),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// kubeletError writes the message bare, as the kubelet's restful handlers do
// (http.Error would add a newline that then shows in the API server's error).
func kubeletError(w http.ResponseWriter, msg string, code int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}
