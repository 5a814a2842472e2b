package nodes

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"

	"github.com/cluster-shepherd/shepherd/internal/redact"
)

// ErrHostKey marks a node whose host key is unknown or does not match known_hosts.
var ErrHostKey = errors.New("host key refused")

// Defaults used when the corresponding Config field is zero.
const (
	DefaultPort     = 22
	DefaultUser     = "root"
	DefaultTimeout  = 30 * time.Second
	DefaultMaxBytes = 64 << 10
	DefaultMaxLines = 200
)

// Config says how to reach nodes and how much of a command's output to keep.
type Config struct {
	User string
	// KeyFile is the private key; only key authentication is offered.
	KeyFile string
	// KnownHostsFile lists the nodes' host keys; it is read on every Run so a
	// rotated file takes effect without a restart.
	KnownHostsFile string
	Port           int
	// Timeout bounds connect plus command.
	Timeout time.Duration
	// MaxBytes caps each of stdout and stderr; MaxLines caps their lines.
	MaxBytes int
	MaxLines int
	// Addresses overrides a node's SSH address by node name ("host" or "host:port").
	Addresses map[string]string
	// Allowlist defaults to DefaultAllowlist().
	Allowlist *Allowlist
}

// Result is what a command printed and how it ended; a non-zero exit is a
// Result, not an error, because it is information about the node.
type Result struct {
	Command   []string `json:"command"`
	Stdout    string   `json:"stdout"`
	Stderr    string   `json:"stderr,omitempty"`
	ExitCode  int      `json:"exit_code"`
	Truncated bool     `json:"truncated,omitempty"`
}

// Runner runs allowlisted commands on nodes over SSH.
type Runner struct {
	cfg    Config
	signer ssh.Signer
}

// New loads the private key and checks that known_hosts is readable, so a
// misconfiguration shows at start-up rather than at the first call.
func New(cfg Config) (*Runner, error) {
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxLines <= 0 {
		cfg.MaxLines = DefaultMaxLines
	}
	if cfg.Allowlist == nil {
		cfg.Allowlist = DefaultAllowlist()
	}
	if cfg.KeyFile == "" || cfg.KnownHostsFile == "" {
		return nil, errors.New("nodes: an SSH key file and a known_hosts file are required")
	}
	pem, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("nodes: read SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		// The parser's message never contains key material, but be terse anyway.
		return nil, fmt.Errorf("nodes: SSH key %s is not an unencrypted private key", cfg.KeyFile)
	}
	if _, err := knownhosts.New(cfg.KnownHostsFile); err != nil {
		return nil, fmt.Errorf("nodes: load known_hosts: %w", err)
	}
	return &Runner{cfg: cfg, signer: signer}, nil
}

// Allowlist returns the allowlist the Runner enforces, for tool descriptions.
func (r *Runner) Allowlist() *Allowlist { return r.cfg.Allowlist }

// NodeAddress returns the SSH address of a node: the configured override, or
// its InternalIP with the configured port.
func (r *Runner) NodeAddress(n *corev1.Node) (string, error) {
	if a, ok := r.cfg.Addresses[n.Name]; ok && a != "" {
		return r.withPort(a), nil
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && a.Address != "" {
			return r.withPort(a.Address), nil
		}
	}
	return "", fmt.Errorf("node %s has no InternalIP and no configured SSH address", n.Name)
}

func (r *Runner) withPort(host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(r.cfg.Port))
}

// Run checks command against the allowlist and runs it on addr ("host" or
// "host:port"). Output is capped and secrets in it are masked.
func (r *Runner) Run(ctx context.Context, addr, command string) (Result, error) {
	argv, err := r.cfg.Allowlist.Check(command)
	if err != nil {
		return Result{}, err
	}
	return r.run(ctx, r.withPort(addr), argv)
}

// run executes argv without consulting the allowlist; only Run and tests call it.
func (r *Runner) run(ctx context.Context, addr string, argv []string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	res := Result{Command: argv}

	hostKeys, err := knownhosts.New(r.cfg.KnownHostsFile)
	if err != nil {
		return res, fmt.Errorf("nodes: load known_hosts: %w", err)
	}
	algos, err := hostKeyAlgorithms(hostKeys, addr)
	if err != nil {
		return res, err
	}
	config := &ssh.ClientConfig{
		User:              r.cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(r.signer)},
		HostKeyCallback:   checkHostKey(hostKeys),
		HostKeyAlgorithms: algos,
		Timeout:           r.cfg.Timeout,
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return res, fmt.Errorf("ssh %s: connect: %w", addr, err)
	}
	// Closing the connection is the only way to interrupt the handshake or
	// a running session when the deadline passes.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if err != nil {
		conn.Close()
		if errors.Is(err, ErrHostKey) {
			return res, err
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("ssh %s: timed out after %s during the handshake", addr, r.cfg.Timeout)
		}
		return res, fmt.Errorf("ssh %s: handshake: %w", addr, err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return res, fmt.Errorf("ssh %s: session: %w", addr, err)
	}
	defer sess.Close()
	stdout := &capWriter{max: r.cfg.MaxBytes}
	stderr := &capWriter{max: r.cfg.MaxBytes}
	sess.Stdout, sess.Stderr = stdout, stderr

	runErr := sess.Run(Quote(argv))

	var tr1, tr2 bool
	res.Stdout, tr1 = r.shape(stdout)
	res.Stderr, tr2 = r.shape(stderr)
	res.Truncated = tr1 || tr2
	var exitErr *ssh.ExitError
	switch {
	case runErr == nil:
	case ctx.Err() != nil:
		res.ExitCode = -1
		return res, fmt.Errorf("ssh %s: %s timed out after %s", addr, argv[0], r.cfg.Timeout)
	case errors.As(runErr, &exitErr):
		res.ExitCode = exitErr.ExitStatus()
	default:
		res.ExitCode = -1
		return res, fmt.Errorf("ssh %s: run %s: %w", addr, argv[0], runErr)
	}
	return res, nil
}

// shape applies the line cap and masks secrets; the byte cap was applied while reading.
func (r *Runner) shape(w *capWriter) (string, bool) {
	s := strings.ToValidUTF8(w.buf.String(), "\uFFFD")
	truncated := w.dropped
	if lines := strings.SplitAfter(s, "\n"); len(lines) > r.cfg.MaxLines {
		s = strings.Join(lines[:r.cfg.MaxLines], "")
		truncated = true
	}
	s = redact.String(s)
	if truncated {
		s += fmt.Sprintf("\n[truncated at %d lines / %d bytes: narrow the command, e.g. a smaller -n]", r.cfg.MaxLines, r.cfg.MaxBytes)
	}
	return s, truncated
}

// capWriter keeps the first max bytes and discards the rest, so a chatty
// command cannot exhaust memory while it still runs to completion.
type capWriter struct {
	buf     bytes.Buffer
	max     int
	dropped bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room < len(p) {
		w.dropped = true
		if room > 0 {
			w.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return w.buf.Write(p)
}

// checkHostKey turns knownhosts' errors into ones that say what happened.
func checkHostKey(cb ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return fmt.Errorf("%w: %s is not in known_hosts", ErrHostKey, host)
		case errors.As(err, &ke):
			return fmt.Errorf("%w: the %s key of %s does not match known_hosts (changed key, or a machine in the middle)", ErrHostKey, key.Type(), host)
		case errors.As(err, &re):
			return fmt.Errorf("%w: the key of %s is revoked", ErrHostKey, host)
		default:
			return fmt.Errorf("%w: %s: %v", ErrHostKey, host, err)
		}
	}
}

// probeKey is a key no host has; asking known_hosts about it makes the
// callback list the keys it does know for the host.
var probeKey = func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// hostKeyAlgorithms limits negotiation to the key types known_hosts has for
// addr. Otherwise a server offering several host keys may present a type we
// have no line for, and a correct host would be refused as unknown. A host
// with no line at all is refused here, before any connection.
func hostKeyAlgorithms(cb ssh.HostKeyCallback, addr string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("nodes: bad address %q: %w", addr, err)
	}
	p, _ := strconv.Atoi(port)
	remote := &net.TCPAddr{IP: net.ParseIP(host), Port: p}
	if remote.IP == nil {
		remote.IP = net.IPv4zero
	}
	err = cb(knownhosts.Normalize(addr), remote, probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil, fmt.Errorf("%w: %s is not in known_hosts", ErrHostKey, addr)
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos, nil
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// NodeEntry is one line of get_node_list.
type NodeEntry struct {
	Name    string `json:"name"`
	Address string `json:"ssh_address,omitempty"`
	Error   string `json:"error,omitempty"`
}

// NodeList gives every node its SSH address, or says why it has none.
func (r *Runner) NodeList(nodes []corev1.Node) []NodeEntry {
	out := make([]NodeEntry, 0, len(nodes))
	for i := range nodes {
		e := NodeEntry{Name: nodes[i].Name}
		if a, err := r.NodeAddress(&nodes[i]); err != nil {
			e.Error = err.Error()
		} else {
			e.Address = a
		}
		out = append(out, e)
	}
	return out
}
