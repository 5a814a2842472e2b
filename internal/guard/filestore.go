package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FileStore keeps one JSON file per task in a directory (the data PVC). Every
// write goes to a temporary file that is fsynced and renamed into place, so a
// crash leaves either the old or the new version, never half of one. State
// changes hold an flock on the directory's lock file, so two processes
// sharing the volume cannot both win the same transition.
type FileStore struct {
	dir  string
	mu   sync.Mutex
	lock *os.File
}

var _ Store = (*FileStore)(nil)

// OpenFileStore opens (creating if needed) a task store in dir.
func OpenFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, fmt.Errorf("open task store: directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open task store %s: %w", dir, err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open task store lock: %w", err)
	}
	s := &FileStore{dir: dir, lock: lf}
	s.cleanTemp()
	return s, nil
}

// cleanTemp removes temporary files left by a crash; young ones may belong
// to another live process and are left alone.
func (s *FileStore) cleanTemp() {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
			_ = os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
}

func (s *FileStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

// withLock serialises writers within this process (mutex) and across
// processes (flock).
func (s *FileStore) withLock(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return fmt.Errorf("task store is closed")
	}
	if err := flock(s.lock, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock task store: %w", err)
	}
	defer func() { _ = flock(s.lock, syscall.LOCK_UN) }()
	return fn()
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Create stores a new task; it fails with ErrExists if the id is taken.
func (s *FileStore) Create(ctx context.Context, t Task) error {
	if !validID(t.ID) {
		return fmt.Errorf("create task: malformed id %q", t.ID)
	}
	return s.withLock(func() error {
		if _, err := os.Stat(s.path(t.ID)); err == nil {
			return fmt.Errorf("create task %s: %w", t.ID, ErrExists)
		}
		t.Version = 1
		if err := s.write(t); err != nil {
			return fmt.Errorf("create task %s: %w", t.ID, err)
		}
		return nil
	})
}

// Get reads one task. Reads need no lock: rename makes each file atomic.
func (s *FileStore) Get(ctx context.Context, id string) (Task, error) {
	if !validID(id) {
		return Task{}, fmt.Errorf("task %q: %w", id, ErrNotFound)
	}
	return s.read(id)
}

func (s *FileStore) read(id string) (Task, error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return Task{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Task{}, fmt.Errorf("read task %s: %w", id, err)
	}
	var t Task
	if err := json.Unmarshal(b, &t); err != nil {
		return Task{}, fmt.Errorf("read task %s: corrupt file: %w", id, err)
	}
	return t, nil
}

// List returns matching tasks, oldest first.
func (s *FileStore) List(ctx context.Context, q Query) ([]Task, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var out []Task
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		t, err := s.read(strings.TrimSuffix(name, ".json"))
		if errors.Is(err, ErrNotFound) {
			continue // pruned between ReadDir and read
		}
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		if q.match(t) {
			out = append(out, t)
		}
	}
	sortTasks(out)
	return out, nil
}

func sortTasks(ts []Task) {
	sort.Slice(ts, func(i, j int) bool {
		if !ts[i].CreatedAt.Equal(ts[j].CreatedAt) {
			return ts[i].CreatedAt.Before(ts[j].CreatedAt)
		}
		return ts[i].ID < ts[j].ID
	})
}

// Transition applies change if the task is in state from (ErrConflict
// otherwise); the new version is on disk before it returns.
func (s *FileStore) Transition(ctx context.Context, id string, from State, change func(*Task)) (Task, error) {
	if !validID(id) {
		return Task{}, fmt.Errorf("task %q: %w", id, ErrNotFound)
	}
	var out Task
	err := s.withLock(func() error {
		t, err := s.read(id)
		if err != nil {
			return err
		}
		if t.State != from {
			out = t
			return fmt.Errorf("task %s is %s, not %s: %w", id, t.State, from, ErrConflict)
		}
		change(&t)
		t.ID = id
		t.Version++
		if err := s.write(t); err != nil {
			return fmt.Errorf("update task %s: %w", id, err)
		}
		out = t
		return nil
	})
	return out, err
}

// Prune deletes terminal tasks not updated since before.
func (s *FileStore) Prune(ctx context.Context, before time.Time) (int, error) {
	ts, err := s.List(ctx, Query{States: []State{StateDone, StateFailed, StateRejected, StateExpired}})
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.withLock(func() error {
		for _, t := range ts {
			if !t.UpdatedAt.Before(before) {
				continue
			}
			if err := os.Remove(s.path(t.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("prune task %s: %w", t.ID, err)
			}
			n++
		}
		return syncDir(s.dir)
	})
	return n, err
}

// Close releases the lock file.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

func (s *FileStore) write(t Task) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.dir, t.ID+".json", b)
}

// writeFileAtomic writes name in dir via temp file, fsync, rename, and a
// directory fsync so the rename itself survives a power cut.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
