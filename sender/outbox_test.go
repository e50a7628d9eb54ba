package sender

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"

	"github.com/skycall-io/skycall/sender/wire"
)

// outboxPayloads decodes chunks of frames back into their payloads.
func outboxPayloads(t *testing.T, chunks [][]byte) []string {
	t.Helper()
	dec := wire.NewRequestDecoder(bufio.NewReader(bytes.NewReader(bytes.Join(chunks, nil))), wire.Limits{})
	var got []string
	for {
		r, err := dec.Next()
		if err != nil {
			return got
		}
		got = append(got, string(r.Payload))
	}
}

func TestOutboxTakeStartsANewGenerationWithoutWithdrawnCalls(t *testing.T) {
	o := newOutbox()
	a, b := &call{}, &call{}
	o.append(&message{name: "@s", push: true}, body{payload: []byte("send-1")}, 1, 0)
	o.append(&message{name: "@s", call: a}, body{payload: []byte("call-a")}, 2, 0)
	o.append(&message{name: "@s", call: b}, body{payload: []byte("call-b")}, 3, 0)
	if !o.holds(a) || !o.holds(b) {
		t.Fatal("calls just appended are not held")
	}
	if size := o.withdraw(a); size != len("call-a") {
		t.Fatalf("withdraw size = %d", size)
	}
	if o.msgs != 2 || o.sends != 1 || o.bytes != len("send-1")+len("call-b") {
		t.Fatalf("counts after withdraw: msgs %d sends %d bytes %d", o.msgs, o.sends, o.bytes)
	}
	gen := o.gen
	got := o.take(&batch{})
	if got.gen != gen || got.msgs != 2 || got.sends != 1 {
		t.Fatalf("batch gen %d msgs %d sends %d; want gen %d, 2, 1", got.gen, got.msgs, got.sends, gen)
	}
	ctEqual(t, "frames taken", outboxPayloads(t, got.chunks), []string{"send-1", "call-b"})
	if o.holds(b) || o.gen != gen+1 || o.buffered() != 0 || o.msgs != 0 {
		t.Fatal("after take the outbox still holds the batch")
	}
}

func TestOutboxTakeReusesTheSpareChunks(t *testing.T) {
	o := newOutbox()
	o.append(&message{name: "@s", push: true}, body{payload: []byte("one")}, 1, 0)
	first := o.take(&batch{})
	firstChunk := &first.chunks[0][:1][0]
	o.append(&message{name: "@s", push: true}, body{payload: []byte("two")}, 2, 0)
	second := o.take(&first) // the writer wrote first: its chunk is free again
	o.append(&message{name: "@s", push: true}, body{payload: []byte("three")}, 3, 0)
	if &o.chunks[0][0] != firstChunk {
		t.Fatal("the next generation does not reuse the written chunk")
	}
	ctEqual(t, "second batch", outboxPayloads(t, second.chunks), []string{"two"})
	ctEqual(t, "third generation", outboxPayloads(t, o.chunks), []string{"three"})
}

// A backlog larger than a chunk is kept in chunks, none over outboxChunk
// unless one message is; withdrawn calls are cut from whichever chunk holds
// them; the frames come out in order.
func TestOutboxKeepsABacklogInChunks(t *testing.T) {
	o := newOutbox()
	payload := bytes.Repeat([]byte("p"), 1000)
	var want []string
	var cut []*call
	for i := range 1000 { // about 4 chunks
		p := fmt.Appendf(append([]byte{}, payload...), "-%d", i)
		if i%97 == 5 {
			w := &call{}
			o.append(&message{name: "@s", call: w}, body{payload: p}, uint32(i+1), 0)
			cut = append(cut, w)
			continue
		}
		o.append(&message{name: "@s", push: true}, body{payload: p}, uint32(i+1), uint64(i))
		want = append(want, string(p))
	}
	huge := bytes.Repeat([]byte("h"), outboxChunk+1)
	o.append(&message{name: "@s", push: true}, body{payload: huge}, 5000, 5000)
	o.append(&message{name: "@s", push: true}, body{payload: []byte("last")}, 5001, 5001)
	want = append(want, string(huge), "last")
	for _, w := range cut {
		o.withdraw(w)
	}
	if len(o.chunks) < 5 {
		t.Fatalf("%d chunks for %d bytes", len(o.chunks), o.buffered())
	}
	for i, c := range o.chunks {
		if len(c) > outboxChunk && !bytes.Contains(c, huge[:100]) {
			t.Fatalf("chunk %d holds %d bytes, over %d", i, len(c), outboxChunk)
		}
	}
	b := o.take(&batch{})
	if b.msgs != len(want) {
		t.Fatalf("batch of %d messages, want %d", b.msgs, len(want))
	}
	ctEqual(t, "frames taken", outboxPayloads(t, b.chunks), want)
}

func TestOutboxDropReturnsLiveCallsAndCounts(t *testing.T) {
	o := newOutbox()
	a, b := &call{}, &call{}
	o.append(&message{name: "@s", call: a}, body{payload: []byte("a")}, 1, 0)
	o.append(&message{name: "@s", push: true}, body{payload: []byte("send")}, 2, 0)
	o.append(&message{name: "@s", call: b}, body{payload: []byte("b")}, 3, 0)
	o.withdraw(a)
	calls, msgs, sends, bytes := o.drop(nil)
	if len(calls) != 1 || calls[0] != b || msgs != 2 || sends != 1 || bytes != len("send")+1 {
		t.Fatalf("drop = %d calls, %d msgs, %d sends, %d bytes", len(calls), msgs, sends, bytes)
	}
	if o.msgs != 0 || o.buffered() != 0 || o.holds(b) {
		t.Fatal("drop left the outbox non-empty")
	}
}

// A node that sends little keeps little: a chunk grows with what is
// appended to it, so one small message does not cost a whole outboxChunk
// (an idle connected node has a budget of 64 KiB in make bench).
func TestOutboxSmallTrafficKeepsSmallChunks(t *testing.T) {
	o := newOutbox()
	o.append(&message{name: "@s", push: true}, body{payload: []byte("small")}, 1, 0)
	b := o.take(&batch{})
	o.take(&b) // b written: its chunk is free
	if n := o.freeBytes(); n == 0 || n > 1024 {
		t.Fatalf("%d bytes of free chunks after one small message, want a small chunk", n)
	}
}

// buffered is the number of bytes of frames in the outbox, withdrawn calls
// included.
func (o *outbox) buffered() int {
	n := 0
	for _, c := range o.chunks {
		n += len(c)
	}
	return n
}
