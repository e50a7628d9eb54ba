// Package apiwait keeps client-go informers prompt across API server
// restarts, for the operator's cache and the sender's Kubernetes registry.
//
// client-go's reflector backs off after every failed list or watch: 0.8 s
// doubling to a 30 s cap with up to 100% jitter, forgotten only after two
// quiet minutes. A 15 s API server restart therefore leaves an informer
// asleep for up to a minute after the server is back. SharedInformer does
// not expose the reflector's backoff, so ListerWatcher
// wraps the list and watch calls instead: a call that fails because the API
// server is unreachable or not ready yet is retried here, at most maxDelay
// apart, until it succeeds or the informer stops. The reflector never sees
// those failures, so its own backoff stays at its first step, and the
// informer resumes within maxDelay of the API server answering again.
//
// While it waits, it asks the API server's /readyz before trying the call
// again: a request sent to a kube-apiserver that is starting is accepted
// and can be held for seconds (measured: 5 s for a custom resource watch),
// while /readyz answers at once.
//
// The price is load on an API server that is down: one connection attempt
// per informer every maxDelay instead of one every 30 to 60 s. A refused
// connection costs the server nothing; a starting server answering 503 gets
// one TLS handshake per attempt.
package apiwait

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// firstDelay is the wait before the first retry; it doubles up to the cap.
const firstDelay = 100 * time.Millisecond

// ListerWatcher returns lw with its list and watch calls retried while the
// API server is unreachable or not ready, at most maxDelay apart (with up to
// 20% less as jitter, so that many pods do not retry in step). Errors the
// API server decides (forbidden, not found, invalid) are returned at once.
// ready, when not nil, is asked before each retry (see Readyz). log hears
// when a call starts waiting and when the server is back. The result also
// implements cache.ListerWatcherWithContext, which informers use.
func ListerWatcher(lw cache.ListerWatcher, maxDelay time.Duration, ready func(context.Context) error, log logr.Logger) cache.ListerWatcher {
	return &waiting{lw: cache.ToListerWatcherWithContext(lw), maxDelay: maxDelay, ready: ready, log: log}
}

// Readyz returns a check that the API server of cfg answers /readyz with
// ok; every authenticated or anonymous user may read it by default.
func Readyz(cfg *rest.Config) (func(context.Context) error, error) {
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, err
	}
	rc := cs.Discovery().RESTClient()
	return func(ctx context.Context) error {
		body, err := rc.Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) != "ok" {
			err = fmt.Errorf("/readyz answered %q", body)
		}
		return err
	}, nil
}

type waiting struct {
	lw       cache.ListerWatcherWithContext
	maxDelay time.Duration
	ready    func(context.Context) error
	log      logr.Logger
}

func (w *waiting) List(opts metav1.ListOptions) (runtime.Object, error) {
	return w.ListWithContext(context.Background(), opts)
}

func (w *waiting) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return w.WatchWithContext(context.Background(), opts)
}

func (w *waiting) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	return retry(ctx, w, "list", func() (runtime.Object, error) { return w.lw.ListWithContext(ctx, opts) })
}

func (w *waiting) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return retry(ctx, w, "watch", func() (watch.Interface, error) { return w.lw.WatchWithContext(ctx, opts) })
}

func retry[T any](ctx context.Context, w *waiting, what string, call func() (T, error)) (T, error) {
	v, err := call()
	if err == nil || !Transient(err) {
		return v, err
	}
	start := time.Now()
	w.log.Info("API server unreachable; retrying until it answers", "call", what, "every", w.maxDelay, "error", err.Error())
	delay := firstDelay
	for {
		t := time.NewTimer(delay - time.Duration(rand.Int64N(int64(delay)/5+1)))
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err // the informer is stopping: hand back the last failure
		case <-t.C:
		}
		if w.ready != nil {
			rctx, cancel := context.WithTimeout(ctx, w.maxDelay)
			rerr := w.ready(rctx)
			cancel()
			if rerr != nil {
				delay = min(2*delay, w.maxDelay)
				continue
			}
		}
		if v, err = call(); err == nil || !Transient(err) {
			w.log.Info("API server answering again", "call", what, "after", time.Since(start).Round(time.Millisecond))
			return v, err
		}
		delay = min(2*delay, w.maxDelay)
	}
}

// Transient reports whether err says the API server could not be reached
// or is not ready to answer, as opposed to an answer it decided.
func Transient(err error) bool {
	var ne net.Error
	switch {
	case err == nil:
		return false
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	case apierrors.IsServiceUnavailable(err), apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err),
		apierrors.IsServerTimeout(err), apierrors.IsTimeout(err):
		return true
	}
	return false
}
