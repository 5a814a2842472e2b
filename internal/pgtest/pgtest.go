// Package pgtest starts a real, throw-away PostgreSQL server for tests from
// the machine's Debian server binaries, so database code is tested against
// the database it will meet in production rather than a fake.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the role initdb creates; it trusts every loopback connection.
const Superuser = "postgres"

// binGlob is where Debian's postgresql-NN packages put the server binaries.
var binGlob = "/usr/lib/postgresql/*/bin"

const startTimeout = 30 * time.Second

// Server is one running PostgreSQL cluster in a temporary directory.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the postmaster exits
	seq  atomic.Int64

	stopOnce sync.Once
	stopErr  error
}

// Start initialises a fresh cluster in a temporary directory and runs it on a
// free loopback port until Stop.
func Start() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	sweepStale()
	cred, uid, gid, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: temp dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(dir)
		}
	}()
	// The owner file lets a later Start remove this directory if this process
	// dies without running Stop (a panic in a test skips TestMain's defers).
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "sock")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if cred != nil {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, fmt.Errorf("pgtest: chown %s: %w", d, err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", Superuser,
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = serverEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %w: %s", err, lastLines(string(out), 5))
	}

	// A port picked by the kernel can be taken again before postgres binds
	// it, so a failed start is retried on a new port.
	var lastErr error
	for range 3 {
		s, err := launch(bin, dir, cred)
		if err == nil {
			ok = true
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func launch(bin, dir string, cred *syscall.Credential) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port),
		"-k", filepath.Join(dir, "sock"),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig stops the server when the test binary dies for any reason
	// (panic, timeout, kill -9); SIGQUIT is PostgreSQL's immediate shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s := &Server{dir: dir, port: port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return s, nil
		}
		cancel()
		select {
		case <-s.done:
			return nil, fmt.Errorf("pgtest: postgres exited during start: %s", lastLines(readFile(filepath.Join(dir, "postgres.log")), 5))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.kill()
			return nil, fmt.Errorf("pgtest: postgres not ready after %s: %w", startTimeout, err)
		}
	}
}

// DSN is a connection string for the superuser on the "postgres" database.
func (s *Server) DSN() string { return s.dsn("postgres") }

// Port is the loopback TCP port the server listens on.
func (s *Server) Port() int { return s.port }

func (s *Server) dsn(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

var dbName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates an empty database and returns its DSN, so each test
// or suite starts from a clean schema on the shared server.
func (s *Server) CreateDatabase(name string) (string, error) {
	if !dbName.MatchString(name) {
		return "", fmt.Errorf("pgtest: database name %q: want lower-case letters, digits and _, at most 63", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.dsn(name), nil
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates a database named after the test and returns its DSN;
// it fails the test on error.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	name := fmt.Sprintf("t_%s_%d", base, s.seq.Add(1))
	dsn, err := s.CreateDatabase(name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Stop shuts the server down and removes its directory; it is safe to call
// more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		// SIGINT is PostgreSQL's fast shutdown: it ends sessions and exits.
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			s.stopErr = s.kill()
		}
		if err := os.RemoveAll(s.dir); err != nil && s.stopErr == nil {
			s.stopErr = fmt.Errorf("pgtest: remove %s: %w", s.dir, err)
		}
	})
	return s.stopErr
}

func (s *Server) kill() error {
	// The negative pid reaches the postmaster's backends too.
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.done:
		return errors.New("pgtest: postgres did not stop in time and was killed")
	case <-time.After(5 * time.Second):
		return errors.New("pgtest: postgres could not be killed")
	}
}

// Main runs a package's tests with one server shared by all of them: it
// stores the server in *srv, stops it when the tests end or the process is
// interrupted, and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M, srv **Server) {
	os.Exit(run(m, srv))
}

func run(m *testing.M, srv **Server) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*srv = s
	defer s.Stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		_ = s.Stop()
		fmt.Fprintf(os.Stderr, "pgtest: %s: server stopped\n", sig)
		os.Exit(1)
	}()
	return m.Run()
}

func findBin() (string, error) {
	if dir := os.Getenv("PGTEST_BIN"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			return "", fmt.Errorf("pgtest: PGTEST_BIN=%s has no initdb: %w", dir, err)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob(binGlob)
	var found []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				found = append(found, d)
			}
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("pgtest: no PostgreSQL server binaries in %s; install them with `apt-get install -y postgresql` (or set PGTEST_BIN)", binGlob)
	}
	// Highest major version wins: /usr/lib/postgresql/15/bin over .../13/bin.
	sort.Slice(found, func(i, j int) bool { return majorOf(found[i]) > majorOf(found[j]) })
	return found[0], nil
}

func majorOf(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

// serverUser picks who runs the server: PostgreSQL refuses to run as root,
// so as root it is the unprivileged "postgres" system user, created if absent.
func serverUser() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if out, uerr := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput(); uerr != nil {
			return nil, 0, 0, fmt.Errorf("pgtest: running as root needs a postgres user: useradd: %w: %s", uerr, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return nil, 0, 0, fmt.Errorf("pgtest: postgres user: %w", err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, uid, gid, nil
}

func serverEnv() []string {
	env := []string{"LC_ALL=C", "LANG=C", "TZ=UTC"}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sweepStale removes directories left by test processes that died without
// stopping their server; Pdeathsig already ended the server itself.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) && !postmasterAlive(d) {
			_ = os.RemoveAll(d)
		}
	}
}

func postmasterAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
