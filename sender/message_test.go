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
