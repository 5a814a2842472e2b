package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var srv *Server

func TestMain(m *testing.M) {
	// The helper-process mode lets TestServerDiesWithTestProcess start a
	// server in a child test binary and then kill that child.
	if os.Getenv("PGTEST_HELPER") == "1" {
		s, err := Start()
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(2)
		}
		os.Stdout.WriteString(s.dir + "\n" + strconv.Itoa(s.cmd.Process.Pid) + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	Main(m, &srv)
}

func TestServerAnswersAndIsNotRoot(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version == "" {
		t.Fatal("empty server_version")
	}
	var fsync, listen string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('listen_addresses')").Scan(&fsync, &listen); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" || listen != "127.0.0.1" {
		t.Fatalf("fsync=%s listen_addresses=%s, want off and 127.0.0.1", fsync, listen)
	}
	st, err := os.Stat(filepath.Join(srv.dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && st.Sys().(*syscall.Stat_t).Uid == 0 {
		t.Fatal("data directory owned by root; the server must run unprivileged")
	}
}

func TestCreateDatabaseIsolates(t *testing.T) {
	ctx := context.Background()
	a, err := srv.CreateDatabase("iso_a")
	if err != nil {
		t.Fatal(err)
	}
	b := srv.NewDatabase(t)
	if a == b || !strings.Contains(a, "/iso_a?") {
		t.Fatalf("DSNs %q and %q", a, b)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("table created in one database is visible in another")
	}
	if _, err := srv.CreateDatabase("iso_a"); err == nil {
		t.Fatal("creating an existing database succeeded")
	}
}

func TestCreateDatabaseRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "Upper", "x; DROP DATABASE postgres", `a"b`, strings.Repeat("a", 64), "1abc"} {
		if _, err := srv.CreateDatabase(name); err == nil {
			t.Errorf("CreateDatabase(%q) succeeded", name)
		}
	}
}

func TestStopRemovesEverything(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	dsn := s.DSN()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir still there: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		c.Close(ctx)
		t.Fatal("server still answers after Stop")
	}
}

func TestServerDiesWithTestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second server")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got string
	deadline := time.Now().Add(40 * time.Second)
	for strings.Count(got, "\n") < 2 && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		got += string(buf[:n])
		if err != nil {
			break
		}
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 {
		_ = cmd.Process.Kill()
		t.Fatalf("helper said %q", got)
	}
	dir := lines[0]
	pid, _ := strconv.Atoi(lines[1])
	_ = cmd.Process.Kill() // as a panic or timeout would end it: no defers run
	_ = cmd.Wait()

	for deadline := time.Now().Add(15 * time.Second); ; {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			break
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("postmaster outlived the test process")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The next Start sweeps the orphaned directory.
	for deadline := time.Now().Add(10 * time.Second); postmasterAlive(dir) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("orphaned dir %s not swept: %v", dir, err)
	}
}

func TestMissingBinariesSayHowToInstall(t *testing.T) {
	t.Setenv("PGTEST_BIN", t.TempDir())
	_, err := Start()
	if err == nil || !strings.Contains(err.Error(), "initdb") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("PGTEST_BIN", "")
	old := binGlob
	binGlob = filepath.Join(t.TempDir(), "*", "bin")
	defer func() { binGlob = old }()
	_, err = Start()
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y postgresql") {
		t.Fatalf("err = %v", err)
	}
}
