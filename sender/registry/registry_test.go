package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
)

func TestParseClusterConfig(t *testing.T) {
	cfg, err := ParseClusterConfig([]byte(`-- skynet cluster config
db = "10.0.0.7:2528"   -- the database
cache = false
_ENV["db-0"] = 'db-0.db:2528';
gone = "1.2.3.4:5"
gone = nil
__nowaiting = true
	esc="h\x6fst:1"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Entry{
		"db":    {Node: "db", State: Ready, Address: "10.0.0.7:2528"},
		"cache": {Node: "cache", State: Down, Reason: "set to false in the cluster config"},
		"db-0":  {Node: "db-0", State: Ready, Address: "db-0.db:2528"},
		"esc":   {Node: "esc", State: Ready, Address: "host:1"},
	}
	if len(cfg.Nodes) != len(want) {
		t.Fatalf("nodes %v, want %v", cfg.Nodes, want)
	}
	for k, v := range want {
		if cfg.Nodes[k] != v {
			t.Errorf("%s = %+v, want %+v", k, cfg.Nodes[k], v)
		}
	}
	if !cfg.NoWait {
		t.Error("__nowaiting not read")
	}
}

func TestParseClusterConfigErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
		want string
	}{
		{"a = \"1.2.3.4:5\"\nb = 42\n", 2, "want"},
		{"a = \"1.2.3.4:5\"\n\n-- c\nb = true\n", 4, "got true"},
		{"a \"x:1\"\n", 1, "expected '='"},
		{"a = \"noport\"\n", 1, "not host:port"},
		{"a = \"h:99999\"\n", 1, "invalid port"},
		{"a = \"unterminated\n", 1, "unfinished string"},
		{"_ENV = \"x\"\ndb = \"h:1\"\n", 1, "only _ENV[\"name\"]"},
		{"end = \"h:1\"\n", 1, "Lua keyword"},
		{"db = [[h:1]]\n", 1, "want"},
		{"db = \"h:1\"\n--[[ never closed\n", 2, "unfinished long comment"},
		{"db = \"h\\u{110000000}:1\"\n", 1, "must be hex below 2^31"},
		{"db == \"h:1\"\n", 1, "expected '='"},
		{"x = 1 + 2\n", 1, "want"},
		{"_ENV[db] = \"h:1\"\n", 1, "quoted name"},
		{"a = \"h:1\" b = \"h:2\" c\n", 1, "expected '='"},
	} {
		_, err := ParseClusterConfig([]byte(tc.src))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: error %v, want a *ParseError", tc.src, err)
			continue
		}
		if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.want) {
			t.Errorf("%q: %v; want line %d mentioning %q", tc.src, err, tc.line, tc.want)
		}
	}
}

func TestStaticStatesAndWatch(t *testing.T) {
	s := NewStatic(map[string]string{"db": "h:1", "pending": ""})
	var kicks atomic.Int32
	stop := s.Watch("db", func() { kicks.Add(1) })
	check := func(node string, want State, addr string) {
		t.Helper()
		e, err := s.Lookup(node)
		if err != nil || e.State != want || e.Address != addr {
			t.Fatalf("Lookup(%s) = %+v, %v; want %s %q", node, e, err, want, addr)
		}
	}
	check("db", Ready, "h:1")
	check("pending", NotReady, "")
	check("nope", Absent, "")
	s.Set("db", "h:2")
	check("db", Ready, "h:2")
	s.SetDraining("db", "h:2", "uid-1")
	check("db", Draining, "h:2")
	s.SetIncarnation("db", "h:2", "uid-2")
	check("db", Ready, "h:2")
	if e, _ := s.Lookup("db"); e.Incarnation != "uid-2" {
		t.Fatalf("incarnation %q, want uid-2", e.Incarnation)
	}
	s.SetDown("db")
	check("db", Down, "")
	s.Delete("db")
	check("db", Absent, "")
	if got := kicks.Load(); got != 5 {
		t.Fatalf("watch notified %d times for 5 changes", got)
	}
	s.Set("other", "h:3") // other nodes do not notify
	if got := kicks.Load(); got != 5 {
		t.Fatalf("watch of db notified for another node")
	}
	s.SetNoWait(true)
	if e, _ := s.Lookup("nope"); !e.NoWait {
		t.Fatal("no-wait not reported for an absent node")
	}
	stop()
	s.Set("db", "h:4")
	if got := kicks.Load(); got != 6 { // the no-wait change notified everyone
		t.Fatalf("notified %d times after stop, want 6", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFileReloadsWhenRewritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "clustername.lua")
	writeFile(t, path, "db = \"h:1\"\n")
	f, err := NewFile(path, FilePollInterval(time.Hour)) // notifications only
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kicks atomic.Int32
	defer f.Watch("db", func() { kicks.Add(1) })()
	if e, _ := f.Lookup("db"); e.Address != "h:1" {
		t.Fatalf("initial %+v", e)
	}
	writeFile(t, path, "db = \"h:2\"\n")
	testkit.Eventually(t, "the rewrite is seen", func() bool { e, _ := f.Lookup("db"); return e.Address == "h:2" })
	testkit.Eventually(t, "the watcher is told", func() bool { return kicks.Load() >= 1 })

	// A bad line is an error with its line number; the previous content stays.
	writeFile(t, path, "db = \"h:3\"\nbroken line\n")
	testkit.Eventually(t, "the bad content is reported", func() bool { return f.Err() != nil })
	if !strings.Contains(f.Err().Error(), "clustername.lua:2:") {
		t.Errorf("error %q should name the file and line 2", f.Err())
	}
	if e, _ := f.Lookup("db"); e.Address != "h:2" {
		t.Fatalf("after a bad reload %+v, want the previous h:2", e)
	}
	writeFile(t, path, "db = false\n")
	testkit.Eventually(t, "down is seen", func() bool { e, _ := f.Lookup("db"); return e.State == Down })
	if f.Err() != nil {
		t.Fatalf("error kept after a good reload: %v", f.Err())
	}
	writeFile(t, path, "-- empty\n__nowaiting = true\n")
	testkit.Eventually(t, "removal is seen", func() bool { e, _ := f.Lookup("db"); return e.State == Absent && e.NoWait })
}

// configMapDir lays out a directory as the kubelet mounts a ConfigMap:
// data in a timestamped directory, ..data a symlink to it, and each key a
// symlink through ..data.
type configMapDir struct {
	t   *testing.T
	dir string
	gen int
}

func (c *configMapDir) update(key, content string) {
	c.t.Helper()
	c.gen++
	ts := filepath.Join(c.dir, "..2026_11_24_00_00_00."+strings.Repeat("x", c.gen))
	if err := os.Mkdir(ts, 0o755); err != nil {
		c.t.Fatal(err)
	}
	writeFile(c.t, filepath.Join(ts, key), content)
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	link := filepath.Join(c.dir, key)
	if _, err := os.Lstat(link); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", key), link); err != nil {
			c.t.Fatal(err)
		}
	}
}

func TestFileFollowsConfigMapSymlinkSwap(t *testing.T) {
	cm := &configMapDir{t: t, dir: t.TempDir()}
	cm.update("clustername.lua", "db = \"h:1\"\n")
	f, err := NewFile(filepath.Join(cm.dir, "clustername.lua"), FilePollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, addr := range []string{"h:2", "h:3", "h:4"} {
		cm.update("clustername.lua", "db = \""+addr+"\"\n")
		testkit.Eventually(t, "swap "+addr+" is seen", func() bool { e, _ := f.Lookup("db"); return e.Address == addr })
		if got := f.Loads(); got != uint64(i+2) {
			t.Fatalf("loads %d after %d swaps", got, i+1)
		}
	}
}

func TestFilePollsWithoutNotifications(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.lua")
	writeFile(t, path, "db = \"h:1\"\n")
	f, err := NewFile(path, FilePollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeFile(t, path, "db = \"h:2\"\n")
	testkit.Eventually(t, "polled", func() bool { e, _ := f.Lookup("db"); return e.Address == "h:2" })
}

func TestNewFileFailsOnBadContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.lua")
	writeFile(t, path, "ok = \"h:1\"\nbad\n")
	_, err := NewFile(path)
	if !errors.Is(err, ErrRegistry) || !strings.Contains(err.Error(), "c.lua:2:") {
		t.Fatalf("NewFile on bad content: %v", err)
	}
	if _, err := NewFile(filepath.Join(dir, "missing.lua")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewFile on a missing file: %v", err)
	}
}
