package sender

import (
	"errors"
	"testing"
)

func TestPutCallClearsTheWaiterButKeepsItsChannel(t *testing.T) {
	w := getCall()
	done := w.done
	w.reply, w.err, w.session, w.name, w.where = []byte("r"), errors.New("e"), 9, "@x", whereOut
	w.done <- struct{}{}
	<-w.done
	putCall(w)
	if w.done != done || w.reply != nil || w.err != nil || w.session != 0 || w.name != "" || w.where != whereNone {
		t.Fatalf("pooled waiter not reset: %+v", w)
	}
}

func TestDeliverWakesEachWaiterOnce(t *testing.T) {
	ws := []*call{getCall(), getCall()}
	deliver(ws)
	for _, w := range ws {
		select {
		case <-w.done:
		default:
			t.Fatal("waiter not woken")
		}
		select {
		case <-w.done:
			t.Fatal("waiter woken twice")
		default:
		}
		putCall(w)
	}
}

func TestQuotaAdmitsUnderLimitsAndAnyMessageWhenEmpty(t *testing.T) {
	var q quota
	if !q.admits(1000, 2, 10) {
		t.Fatal("an empty queue must admit a message over the byte limit")
	}
	q.add(1000)
	if q.admits(1, 2, 10) {
		t.Fatal("admitted over the byte limit")
	}
	q.release(1, 1000)
	q.add(4)
	q.add(4)
	if q.admits(1, 2, 10) {
		t.Fatal("admitted over the message limit")
	}
}

func TestQuotaReleaseWakesWaiters(t *testing.T) {
	var q quota
	q.add(5)
	space := q.wait()
	q.release(1, 5)
	select {
	case <-space:
	default:
		t.Fatal("release did not wake the waiter")
	}
	if q.msgs != 0 || q.bytes != 0 {
		t.Fatalf("quota %d msgs %d bytes after release", q.msgs, q.bytes)
	}
}
