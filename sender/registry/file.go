package registry

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// DefaultFilePollInterval is how often a File registry re-reads its file even
// without a change notification, as a safety net for file systems where
// notifications are lost.
const DefaultFilePollInterval = 5 * time.Second

// FileOption configures a File registry.
type FileOption func(*File)

// FilePollInterval sets how often the file is re-read without a change
// notification (default DefaultFilePollInterval; d <= 0 keeps the default).
func FilePollInterval(d time.Duration) FileOption {
	return func(f *File) {
		if d > 0 {
			f.poll = d
		}
	}
}

// FileLogger sets where reloads and reload errors are logged.
func FileLogger(l logr.Logger) FileOption {
	return func(f *File) { f.log = l }
}

// File is a registry read from skynet's cluster config file (see
// ParseClusterConfig), reloaded when the file changes on disk.
//
// It watches the file's directory, so it follows both in-place rewrites and
// the way Kubernetes updates a mounted ConfigMap (writing a new directory and
// swapping the ..data symlink), and it also re-reads the file periodically.
// A reload that fails (bad line, unreadable file) is logged and reported by
// Err; the previous good content stays in force.
//
// The file is the whole truth at each reload: a node whose line disappears
// becomes Absent (senders keep a connection they already have to it, as
// skynet's merging reload does).
type File struct {
	path string
	poll time.Duration
	log  logr.Logger

	mu      sync.RWMutex
	cfg     *ClusterConfig
	raw     []byte
	lastErr error
	loads   uint64

	w      Watchers
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// NewFile reads path and starts following it. It fails if the file cannot
// be read or parsed now; later failures keep the last good content.
// Call Close to stop following it.
func NewFile(path string, opts ...FileOption) (*File, error) {
	f := &File{path: path, poll: DefaultFilePollInterval, log: logr.Discard(),
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(f)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster config: %w", ErrRegistry, err)
	}
	cfg, err := ParseClusterConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster config: %w", ErrRegistry, withFile(err, path))
	}
	f.cfg, f.raw, f.loads = cfg, raw, 1
	// Watch before returning, so that no change after NewFile is missed.
	var fw *fsnotify.Watcher
	if w, err := fsnotify.NewWatcher(); err != nil {
		f.log.Error(err, "Cannot watch the cluster config; polling it only", "path", f.path, "interval", f.poll)
	} else if err := w.Add(filepath.Dir(f.path)); err != nil {
		w.Close()
		f.log.Error(err, "Cannot watch the cluster config directory; polling it only", "path", f.path, "interval", f.poll)
	} else {
		fw = w
	}
	f.reload() // a change between the first read and the watch
	go f.follow(fw)
	return f, nil
}

func withFile(err error, path string) error {
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.File = path
	}
	return err
}

// Lookup implements Registry.
func (f *File) Lookup(node string) (Entry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if e, ok := f.cfg.Nodes[node]; ok {
		return e, nil
	}
	return Entry{Node: node, State: Absent, NoWait: f.cfg.NoWait}, nil
}

// Watch implements Registry.
func (f *File) Watch(node string, notify func()) (stop func()) {
	return f.w.Add(node, notify)
}

// Err returns the error of the last reload, or nil if it succeeded.
func (f *File) Err() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.lastErr
}

// Loads returns how many times the content was loaded (1 after NewFile, +1
// per reload that changed it).
func (f *File) Loads() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.loads
}

// Close stops following the file. Lookups keep answering from the last
// content.
func (f *File) Close() error {
	f.closed.Do(func() { close(f.stop) })
	<-f.done
	return nil
}

func (f *File) follow(fw *fsnotify.Watcher) {
	defer close(f.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fw != nil {
		defer fw.Close()
		events, errs = fw.Events, fw.Errors
	}
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	// Writers rarely replace a file in one step: wait for a short quiet
	// spell after the last event before reading.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
			f.reload()
		case <-events:
			debounce.Reset(20 * time.Millisecond)
		case err := <-errs:
			f.log.Error(err, "Watching the cluster config failed", "path", f.path)
		case <-debounce.C:
			f.reload()
		}
	}
}

// reload re-reads the file and, if its content changed and parses, puts it
// in force and notifies the watchers of the nodes that changed.
func (f *File) reload() {
	raw, err := os.ReadFile(f.path)
	if err == nil {
		f.mu.RLock()
		same := bytes.Equal(raw, f.raw)
		f.mu.RUnlock()
		if same {
			f.setErr(nil)
			return
		}
	}
	var cfg *ClusterConfig
	if err == nil {
		cfg, err = ParseClusterConfig(raw)
		err = withFile(err, f.path)
	}
	if err != nil {
		f.mu.Lock()
		repeat := f.lastErr != nil && f.lastErr.Error() == err.Error()
		f.lastErr = err
		f.mu.Unlock()
		if !repeat {
			f.log.Error(err, "Cluster config not reloaded; the previous content stays in force", "path", f.path)
		}
		return
	}
	f.mu.Lock()
	old := f.cfg
	f.cfg, f.raw, f.lastErr = cfg, raw, nil
	f.loads++
	f.mu.Unlock()

	var changed []string
	for name, e := range cfg.Nodes {
		if o, ok := old.Nodes[name]; !ok || o != e {
			changed = append(changed, name)
		}
	}
	for name := range old.Nodes {
		if _, ok := cfg.Nodes[name]; !ok {
			changed = append(changed, name)
		}
	}
	f.log.Info("Cluster config reloaded", "path", f.path, "nodes", len(cfg.Nodes), "changed", len(changed))
	if old.NoWait != cfg.NoWait {
		f.w.NotifyAll()
		return
	}
	f.w.Notify(changed...)
}

func (f *File) setErr(err error) {
	f.mu.Lock()
	f.lastErr = err
	f.mu.Unlock()
}
