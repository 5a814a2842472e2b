package guard_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cluster-shepherd/shepherd/internal/guard"
)

func countRecords(t *testing.T, path string) (int, int64) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec guard.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s line %d: %v", path, n+1, err)
		}
		n++
	}
	st, _ := f.Stat()
	return n, st.Size()
}

func TestAuditRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	al, err := guard.OpenAuditLog(path, guard.RotateAudit(2000, 2))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := al.Write(guard.AuditRecord{Tool: "list_workloads", Decision: guard.DecisionAllowed, Result: fmt.Sprintf("call %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	al.Close()
	total := 0
	for _, p := range []string{path, path + ".1", path + ".2"} {
		n, size := countRecords(t, p)
		if size > 2000 {
			t.Errorf("%s is %d bytes, over the 2000 limit", p, size)
		}
		if n == 0 {
			t.Errorf("%s holds no records", p)
		}
		total += n
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("a third old file was kept: %v", err)
	}
	if total >= 100 {
		t.Errorf("%d records in 3 files of 2000 bytes: nothing was dropped by rotation?", total)
	}
	// Reopening continues the current file and its size.
	al, err = guard.OpenAuditLog(path, guard.RotateAudit(2000, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	before, _ := countRecords(t, path)
	if err := al.Write(guard.AuditRecord{Tool: "x", Decision: guard.DecisionAllowed}); err != nil {
		t.Fatal(err)
	}
	if after, size := countRecords(t, path); after != before+1 && after != 1 || size > 2000 {
		t.Errorf("after reopen: %d records (%d before), %d bytes", after, before, size)
	}
}

func TestAuditWriteFailsWhenRotationCannot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	al, err := guard.OpenAuditLog(path, guard.RotateAudit(300, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	if err := al.Write(guard.AuditRecord{Tool: "a", Decision: guard.DecisionAllowed, Result: string(make([]byte, 200))}); err != nil {
		t.Fatal(err)
	}
	// path.1 as a non-empty directory: removing it fails, so rotation does.
	if err := os.MkdirAll(filepath.Join(path+".1", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := al.Write(guard.AuditRecord{Tool: "b", Decision: guard.DecisionAllowed, Result: string(make([]byte, 200))}); err == nil {
		t.Fatal("write succeeded although the audit log could not rotate")
	}
	// Once the obstacle is gone, writes work again.
	os.RemoveAll(path + ".1")
	if err := al.Write(guard.AuditRecord{Tool: "c", Decision: guard.DecisionAllowed}); err != nil {
		t.Fatalf("write after the obstacle went: %v", err)
	}
}
