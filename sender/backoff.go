package sender

import "time"

// backoffDelay is the wait before the next connection attempt after attempt
// consecutive failures (attempt >= 1): base × 1.6^(attempt-1), capped at
// max, then scaled by 0.8 + 0.4×jitter for jitter in [0, 1), so that
// clients that lost a node together do not redial it in step. It is pure:
// the caller supplies the randomness, and tests need no clock.
func backoffDelay(attempt int, base, max time.Duration, jitter float64) time.Duration {
	d := float64(base)
	for i := 1; i < attempt && d < float64(max); i++ {
		d *= 1.6
	}
	d = min(d, float64(max))
	d *= 0.8 + 0.4*jitter
	return time.Duration(d)
}

// redial is the reconnect policy of one node: how many attempts in a row
// failed and when the next may start. It is owned by the node's manager
// goroutine (node.run) and needs no lock.
type redial struct {
	attempt  int       // consecutive failures
	retryAt  time.Time // zero: the next attempt may start at once
	lastAddr string    // the address last dialed; a new one starts afresh
	dials    int       // attempts so far, for the reconnects metric
}

// failed records a failed attempt (or a connection that did not last) and
// returns the delay before the next.
func (r *redial) failed(now time.Time, base, max time.Duration, jitter float64) time.Duration {
	r.attempt++
	d := backoffDelay(r.attempt, base, max, jitter)
	r.retryAt = now.Add(d)
	return d
}

// reset lets the next attempt start at once, with the base delay after it.
func (r *redial) reset() {
	r.attempt, r.retryAt = 0, time.Time{}
}

// wait is how long until the next attempt may start (<= 0: now).
func (r *redial) wait(now time.Time) time.Duration {
	return r.retryAt.Sub(now)
}
