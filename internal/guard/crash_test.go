package guard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/guard"
	"github.com/cluster-shepherd/shepherd/internal/guard/storetest"
)

const (
	crashEnv   = "GUARD_CRASH_CHILD_DIR"
	crashDrain = "GUARD_CRASH_DRAIN"
)

// TestCrashSafety kills a child process with SIGKILL at random moments while
// it queues, approves, authorizes and "executes" tasks, then checks that no
// queued task was lost and no task was executed twice.
func TestCrashSafety(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		if err := crashChild(dir, os.Getenv(crashDrain) != ""); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	iterations := 200
	if testing.Short() {
		iterations = 30
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	began := time.Now()
	for i := range iterations {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Count from the moment the child works on the queue, not from its
		// start: on a slow machine (or under -race) starting takes longer
		// than the whole window, and every kill would land before any work.
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					close(ready)
					break
				}
			}
			io.Copy(io.Discard, out)
		}()
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Exited() && ws.ExitStatus() == 3 {
			t.Fatalf("iteration %d: child failed: %v\n%s", i, err, stderr.String())
		}
	}
	// One clean run drains what the kills left pending or approved.
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashDrain+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("drain run: %v\n%s", err, out)
	}

	store, err := guard.OpenFileStore(filepath.Join(dir, "tasks"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	all, err := store.List(context.Background(), guard.Query{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]guard.Task{}
	states := map[guard.State]int{}
	for _, tk := range all {
		byID[tk.ID] = tk
		states[tk.State]++
	}
	queued := readLines(t, filepath.Join(dir, "queued.log"))
	for _, id := range queued {
		if _, ok := byID[id]; !ok {
			t.Errorf("task %s was queued (Queue returned) but is lost", id)
		}
	}
	seen := map[string]int{}
	for _, id := range readLines(t, filepath.Join(dir, "executions.log")) {
		seen[id]++
		if seen[id] > 1 {
			t.Errorf("task %s executed %d times", id, seen[id])
		}
		if tk, ok := byID[id]; !ok || (tk.State != guard.StateDone && tk.State != guard.StateExecuting) {
			t.Errorf("task %s executed but its state is %q", id, tk.State)
		}
	}
	for _, tk := range all {
		if tk.State == guard.StateDone && seen[tk.ID] != 1 {
			t.Errorf("task %s is done but was executed %d times", tk.ID, seen[tk.ID])
		}
		if tk.State == guard.StatePending || tk.State == guard.StateApproved {
			t.Errorf("task %s still %s after the drain run", tk.ID, tk.State)
		}
	}
	if len(queued) < iterations/4 || len(seen) == 0 {
		t.Fatalf("kills landed too early to test anything: %d queued, %d executed", len(queued), len(seen))
	}
	t.Logf("%d kills in %s: %d tasks (%d acknowledged), %d executed, states %v",
		iterations, time.Since(began).Round(time.Millisecond), len(all), len(queued), len(seen), states)
}

// crashChild works through the queue like a server and a busy human would:
// approve what is pending, run what is approved, queue something new.
func crashChild(dir string, drain bool) error {
	ctx := context.Background()
	store, err := guard.OpenFileStore(filepath.Join(dir, "tasks"))
	if err != nil {
		return err
	}
	audit, err := guard.OpenAuditLog(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		return err
	}
	g, err := guard.New(guard.Options{
		Memory: storetest.NewMemory(guard.Review), Store: store, Audit: audit,
		Floors: guard.DefaultFloors("shepherd"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for n := 0; ; n++ {
		pending, err := g.Pending(ctx)
		if err != nil {
			return err
		}
		for _, tk := range pending {
			if tk.State != guard.StatePending {
				continue
			}
			if _, err := g.Approve(ctx, tk.ID, "crash-test", guard.ChannelAdmin); err != nil {
				return fmt.Errorf("approve %s: %w", tk.ID, err)
			}
		}
		approved, err := store.List(ctx, guard.Query{States: []guard.State{guard.StateApproved}})
		if err != nil {
			return err
		}
		for _, tk := range approved {
			auth, err := g.Authorize(ctx, tk.Tool, tk.Args())
			if err != nil {
				return fmt.Errorf("authorize %s: %w", tk.ID, err)
			}
			if err := appendLine(filepath.Join(dir, "executions.log"), auth.TaskID); err != nil {
				return err
			}
			if err := g.Finish(ctx, auth, "ok", nil); err != nil {
				return err
			}
		}
		if drain {
			if len(pending) == 0 && len(approved) == 0 {
				return nil
			}
			continue
		}
		args := map[string]any{"namespace": "shop", "name": fmt.Sprintf("web-%d-%d", os.Getpid(), n), "replicas": 2, "kind": "Deployment"}
		tk, err := g.Queue(ctx, guard.QueueInput{Action: "scale", Reason: "crash test", Tool: "scale_workload", Args: args})
		if err != nil {
			return err
		}
		if err := appendLine(filepath.Join(dir, "queued.log"), tk.ID); err != nil {
			return err
		}
	}
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	return out
}
