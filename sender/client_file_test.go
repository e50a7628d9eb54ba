package sender

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/skycall-io/skycall/internal/testkit"
	"github.com/skycall-io/skycall/sender/registry"
)

// ctConfigMapUpdate writes key as the kubelet updates a mounted ConfigMap:
// a new timestamped directory, then an atomic swap of the ..data symlink.
func ctConfigMapUpdate(t *testing.T, dir, key, content string, gen int) {
	t.Helper()
	ts := filepath.Join(dir, "..2026_11_24_00_00_"+strconv.Itoa(gen))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, key), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, key)
	if _, err := os.Lstat(link); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", key), link); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileRegistryRewrittenDuringTraffic(t *testing.T) {
	a := ctServe(t, "db")
	b := ctServe(t, "db")
	dir := t.TempDir()
	const key = "clustername.lua"
	ctConfigMapUpdate(t, dir, key, "-- generated\ndb = \""+a.addr+"\"\n", 1)
	reg, err := registry.NewFile(filepath.Join(dir, key), registry.FilePollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c := ctNewClient(t, reg)
	ctx := ctCtx(t)

	// Traffic runs until the new address has received 500 messages.
	stop := make(chan struct{})
	type result struct {
		sent int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- result{sent: i}
				return
			default:
			}
			m := "f-" + strconv.Itoa(i)
			var err error
			if i%50 == 49 {
				_, err = c.Call(ctx, "db", "@rec", []byte(m))
			} else {
				err = c.Send(ctx, "db", "@rec", []byte(m))
			}
			if err != nil {
				done <- result{sent: i, err: err}
				return
			}
			if i%100 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	testkit.Eventually(t, "traffic flows to the first address", func() bool { return a.count() > 500 })
	// A bad rewrite keeps the previous content in force...
	ctConfigMapUpdate(t, dir, key, "db = \""+b.addr+"\"\nnot lua at all\n", 2)
	testkit.Eventually(t, "the bad content is reported", func() bool { return reg.Err() != nil })
	before := a.count()
	testkit.Eventually(t, "traffic still flows to the first address", func() bool { return a.count() > before+100 })
	// ...and a good one moves the node during traffic.
	ctConfigMapUpdate(t, dir, key, "db = \""+b.addr+"\"\n", 3)
	testkit.Eventually(t, "traffic flows to the new address", func() bool { return b.count() > 500 })
	close(stop)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	testkit.Eventually(t, "all delivered", func() bool { return a.count()+b.count() == r.sent })
	ctEqual(t, "across the rewrite", append(a.received(), b.received()...), testkit.Seq("f", r.sent))
	t.Logf("%d messages, %d to the old address, %d to the new", r.sent, a.count(), b.count())

	// db = false: new messages fail at once.
	ctConfigMapUpdate(t, dir, key, "db = false\n", 4)
	testkit.Eventually(t, "the node is down", func() bool { return c.State("db") == StateDown })
	if err := c.Send(ctx, "db", "@rec", []byte("x")); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("Send after db = false: %v", err)
	}
}
