package sender

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/skycall-io/skycall/sender/wire"
)

// outboxPayloads decodes frames back into their payloads.
func outboxPayloads(t *testing.T, frames []byte) []string {
	t.Helper()
	dec := wire.NewRequestDecoder(bufio.NewReader(bytes.NewReader(frames)), wire.Limits{})
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
	o.append(0, "@s", 1, true, []byte("send-1"), nil, 0, nil)
	o.append(0, "@s", 2, false, []byte("call-a"), a, 0, nil)
	o.append(0, "@s", 3, false, []byte("call-b"), b, 0, nil)
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
	ctEqual(t, "frames taken", outboxPayloads(t, got.frames), []string{"send-1", "call-b"})
	if o.holds(b) || o.gen != gen+1 || len(o.buf) != 0 || o.msgs != 0 {
		t.Fatal("after take the outbox still holds the batch")
	}
}

func TestOutboxTakeReusesTheSpareBuffer(t *testing.T) {
	o := newOutbox()
	o.append(0, "@s", 1, true, []byte("one"), nil, 0, nil)
	spare := make([]byte, 0, 4096)
	first := o.take(&batch{frames: spare})
	o.append(0, "@s", 2, true, []byte("two"), nil, 0, nil)
	if &o.buf[0] != &spare[:1][0] {
		t.Fatal("the next generation does not reuse the spare buffer")
	}
	ctEqual(t, "first batch", outboxPayloads(t, first.frames), []string{"one"})
}

func TestOutboxDropReturnsLiveCallsAndCounts(t *testing.T) {
	o := newOutbox()
	a, b := &call{}, &call{}
	o.append(0, "@s", 1, false, []byte("a"), a, 0, nil)
	o.append(0, "@s", 2, true, []byte("send"), nil, 0, nil)
	o.append(0, "@s", 3, false, []byte("b"), b, 0, nil)
	o.withdraw(a)
	calls, msgs, sends, bytes := o.drop(nil)
	if len(calls) != 1 || calls[0] != b || msgs != 2 || sends != 1 || bytes != len("send")+1 {
		t.Fatalf("drop = %d calls, %d msgs, %d sends, %d bytes", len(calls), msgs, sends, bytes)
	}
	if o.msgs != 0 || len(o.buf) != 0 || o.holds(b) {
		t.Fatal("drop left the outbox non-empty")
	}
}
