package sender

import (
	"math/rand/v2"
	"testing"
)

// TestSeqRangesCountLikeAList checks the run-length set of push ordinals
// against a plain list, under random bursts of Sends and Calls, written
// batches and acks: the count of unconfirmed pushes a lost connection
// reports must be exact.
func TestSeqRangesCountLikeAList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var c nodeConn
		var want []uint64 // unacked, as a list
		var out seqRanges
		var outList []uint64
		seq := uint64(0)
		for step := 0; step < 300; step++ {
			switch rng.IntN(4) {
			case 0, 1: // a burst of messages into the outbox
				for k := rng.IntN(20); k > 0; k-- {
					seq++
					if rng.IntN(3) > 0 { // a push
						out.add(seq)
						outList = append(outList, seq)
					}
				}
			case 2: // the writer writes the batch
				c.written(&out)
				for _, s := range outList {
					if s > c.acked {
						want = append(want, s)
					}
				}
				out.reset()
				outList = outList[:0]
			case 3: // a reply to some message written so far
				if seq == 0 {
					continue
				}
				acked := uint64(rng.Int64N(int64(seq))) + 1
				c.ack(acked)
				kept := want[:0]
				for _, s := range want {
					if s > c.acked {
						kept = append(kept, s)
					}
				}
				want = kept
			}
			if c.unacked.n != len(want) {
				t.Fatalf("round %d step %d: %d unconfirmed pushes counted, want %d", round, step, c.unacked.n, len(want))
			}
		}
		if got := c.unconfirmed(); got != len(want) {
			t.Fatalf("round %d: unconfirmed() = %d, want %d", round, got, len(want))
		}
		if got := c.unconfirmed(); got != 0 {
			t.Fatalf("round %d: unconfirmed() counted twice: %d", round, got)
		}
	}
}

// TestSeqRangesABurstIsOneRun: the memory of unconfirmed pushes does not
// grow with the number of Sends in a burst.
func TestSeqRangesABurstIsOneRun(t *testing.T) {
	var c nodeConn
	var out seqRanges
	for s := uint64(1); s <= 100000; s++ {
		out.add(s)
	}
	c.written(&out)
	if len(c.unacked.runs) != 1 || c.unacked.n != 100000 {
		t.Fatalf("a burst of 100000 Sends is kept as %d runs counting %d", len(c.unacked.runs), c.unacked.n)
	}
}
