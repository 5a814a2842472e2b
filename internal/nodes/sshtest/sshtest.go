// Package sshtest starts a real OpenSSH server on loopback for tests.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const sshdPath = "/usr/sbin/sshd"

// Server is a real OpenSSH server on a loopback port, with a temporary host
// key and a temporary authorized key.
type Server struct {
	Addr       string
	Dir        string
	KeyFile    string // client private key
	KnownHosts string // lists the server's real host key
	User       string
}

// WriteKey writes a new ed25519 private key to path and returns its public key.
func WriteKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs sshd (Debian's openssh-server) for the test and stops it at
// cleanup; it skips the test when sshd is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skip("OpenSSH server not installed (apt-get install -y openssh-server); skipping SSH tests")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd refuses to start as root without its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	hostPub := WriteKey(t, filepath.Join(dir, "host_ed25519"))
	s := &Server{Dir: dir, KeyFile: filepath.Join(dir, "client_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts"), User: u.Username}
	clientPub := WriteKey(t, s.KeyFile)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}

	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_ed25519
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers %s
LogLevel ERROR
`, port, dir, dir, dir, u.Username)
		confFile := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", confFile)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond); err == nil {
				c.Close()
				line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, hostPub)
				if err := os.WriteFile(s.KnownHosts, []byte(line+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return s
			}
			time.Sleep(50 * time.Millisecond)
		}
		lastErr = stderr.String()
	}
	t.Fatalf("sshd did not start: %s", lastErr)
	return nil
}
