package nodes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"

	"github.com/cluster-shepherd/shepherd/internal/nodes/sshtest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sshd adapts the shared test server to this file's field names.
type sshd struct {
	addr, dir, keyFile, knownHosts, user string
}

func startSSHD(t *testing.T) *sshd {
	s := sshtest.Start(t)
	return &sshd{addr: s.Addr, dir: s.Dir, keyFile: s.KeyFile, knownHosts: s.KnownHosts, user: s.User}
}

func writeKey(t *testing.T, path string) ssh.PublicKey { return sshtest.WriteKey(t, path) }

func (s *sshd) runner(t *testing.T, mod func(*Config)) *Runner {
	t.Helper()
	cfg := Config{User: s.user, KeyFile: s.keyFile, KnownHostsFile: s.knownHosts, Timeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunOnRealSSHD(t *testing.T) {
	s := startSSHD(t)
	r := s.runner(t, nil)
	ctx := context.Background()

	res, err := r.Run(ctx, s.addr, "df -h")
	if err != nil {
		t.Fatalf("df -h: %v", err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Filesystem") || res.Truncated {
		t.Fatalf("df -h: %+v", res)
	}
	if res, err := r.Run(ctx, s.addr, "cat /proc/loadavg"); err != nil || res.ExitCode != 0 || len(strings.Fields(res.Stdout)) != 5 {
		t.Errorf("cat /proc/loadavg: %+v %v", res, err)
	}
	// A failing command is a result with its exit code, not an error.
	res, err = r.Run(ctx, s.addr, "cat /proc/pressure/none")
	if err == nil {
		t.Errorf("non-allowlisted file accepted: %+v", res)
	}
	res, err = r.run(ctx, s.addr, []string{"ls", "/nonexistent-dir"})
	if err != nil || res.ExitCode == 0 || !strings.Contains(res.Stderr, "nonexistent-dir") {
		t.Errorf("failing command: %+v %v", res, err)
	}
}

// TestQuotingReachesRemoteShellIntact proves that the remote login shell
// sees each argument as one literal word, whatever it contains.
func TestQuotingReachesRemoteShellIntact(t *testing.T) {
	s := startSSHD(t)
	r := s.runner(t, nil)
	args := []string{"a b", "$(id)", "it's", "`id`", ";ls", "*", "$HOME", "\\n", `"q"`}
	res, err := r.run(context.Background(), s.addr, append([]string{"printf", "%s|"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(args, "|") + "|"; res.Stdout != want {
		t.Fatalf("remote saw %q, want %q", res.Stdout, want)
	}
}

func TestInjectionNeverConnects(t *testing.T) {
	// An address nobody listens on: a refusal must come before any dial.
	r := (&sshd{keyFile: "", knownHosts: ""}).mustRunnerWithoutServer(t)
	for _, cmd := range append(injections, "rm -rf /", "sh -c 'df'", "df -h; reboot", "journalctl -n 10 --since \"$(reboot)\"") {
		_, err := r.Run(context.Background(), "127.0.0.1:1", cmd)
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Run(%q): %v, want ErrNotAllowed", cmd, err)
		}
		if err != nil && !strings.Contains(err.Error(), "allowed commands:") {
			t.Errorf("Run(%q): error does not list the allowed commands", cmd)
		}
	}
}

func (*sshd) mustRunnerWithoutServer(t *testing.T) *Runner {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	writeKey(t, key)
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{KeyFile: key, KnownHostsFile: kh})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHostKeyRefused(t *testing.T) {
	s := startSSHD(t)
	ctx := context.Background()

	t.Run("unknown host", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "known_hosts")
		otherPub := writeKey(t, filepath.Join(t.TempDir(), "k"))
		line := knownhosts.Line([]string{knownhosts.Normalize("127.0.0.1:2222")}, otherPub)
		if err := os.WriteFile(other, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := s.runner(t, func(c *Config) { c.KnownHostsFile = other })
		_, err := r.Run(ctx, s.addr, "uptime")
		if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "not in known_hosts") {
			t.Fatalf("unknown host: %v", err)
		}
	})

	t.Run("changed key", func(t *testing.T) {
		changed := filepath.Join(t.TempDir(), "known_hosts")
		otherPub := writeKey(t, filepath.Join(t.TempDir(), "k"))
		line := knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, otherPub)
		if err := os.WriteFile(changed, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := s.runner(t, func(c *Config) { c.KnownHostsFile = changed })
		_, err := r.Run(ctx, s.addr, "uptime")
		if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("changed key: %v", err)
		}
	})

	t.Run("wrong client key", func(t *testing.T) {
		stranger := filepath.Join(t.TempDir(), "id")
		writeKey(t, stranger)
		r := s.runner(t, func(c *Config) { c.KeyFile = stranger })
		if _, err := r.Run(ctx, s.addr, "uptime"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("unauthorized key: %v", err)
		}
	})
}

func TestTimeoutAndCaps(t *testing.T) {
	s := startSSHD(t)
	ctx := context.Background()

	r := s.runner(t, func(c *Config) { c.Timeout = 700 * time.Millisecond })
	start := time.Now()
	_, err := r.run(ctx, s.addr, []string{"sleep", "10"})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("sleep: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %s", d)
	}

	r = s.runner(t, func(c *Config) { c.MaxLines = 10; c.MaxBytes = 4096 })
	res, err := r.run(ctx, s.addr, []string{"seq", "1", "100000"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || !strings.HasPrefix(res.Stdout, "1\n2\n") || strings.Count(res.Stdout, "\n") > 12 || !strings.Contains(res.Stdout, "[truncated") {
		t.Errorf("line cap: %q", res.Stdout)
	}
	r = s.runner(t, func(c *Config) { c.MaxLines = 1000000; c.MaxBytes = 100 })
	res, err = r.run(ctx, s.addr, []string{"seq", "1", "100000"})
	if err != nil || !res.Truncated || len(res.Stdout) > 100+200 {
		t.Errorf("byte cap: %d bytes, %v", len(res.Stdout), err)
	}
}

func TestSecretsMasked(t *testing.T) {
	s := startSSHD(t)
	r := s.runner(t, nil)
	secret := "hunter2-very-secret-value"
	res, err := r.run(context.Background(), s.addr, []string{"printf", "DB_PASSWORD=%s\nAuthorization: Bearer abcdefghijklmnop\n", secret})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Stdout, secret) || strings.Contains(res.Stdout, "abcdefghijklmnop") {
		t.Fatalf("secret not masked: %q", res.Stdout)
	}
}

func TestNodeAddress(t *testing.T) {
	r := (&sshd{}).mustRunnerWithoutServer(t)
	r.cfg.Addresses = map[string]string{"gpu-1": "10.9.9.9:2222", "edge": "edge.example"}
	node := func(name string, addrs ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
	}
	internal := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}
	external := corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.5"}
	v6 := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::5"}
	for _, tc := range []struct {
		n    *corev1.Node
		want string
	}{
		{node("a", external, internal), "10.0.0.5:22"},
		{node("b", v6), "[fd00::5]:22"},
		{node("gpu-1", internal), "10.9.9.9:2222"},
		{node("edge"), "edge.example:22"},
	} {
		if got, err := r.NodeAddress(tc.n); err != nil || got != tc.want {
			t.Errorf("NodeAddress(%s) = %q, %v; want %q", tc.n.Name, got, err, tc.want)
		}
	}
	if _, err := r.NodeAddress(node("c", external)); err == nil {
		t.Error("node without InternalIP got an address")
	}
	list := r.NodeList([]corev1.Node{*node("a", internal), *node("c", external)})
	if len(list) != 2 || list[0].Address != "10.0.0.5:22" || list[1].Address != "" || list[1].Error == "" {
		t.Errorf("NodeList = %+v", list)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	writeKey(t, key)
	notKey := filepath.Join(dir, "notkey")
	if err := os.WriteFile(notKey, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"no key":          {KnownHostsFile: "/dev/null"},
		"no known_hosts":  {KeyFile: key},
		"missing known":   {KeyFile: key, KnownHostsFile: filepath.Join(dir, "none")},
		"not a key":       {KeyFile: notKey, KnownHostsFile: "/dev/null"},
		"missing keyfile": {KeyFile: filepath.Join(dir, "none"), KnownHostsFile: "/dev/null"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
