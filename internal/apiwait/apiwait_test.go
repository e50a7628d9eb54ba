package apiwait

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	corev1 "k8s.io/api/core/v1"
)

var gr = schema.GroupResource{Group: "cluster.skycall.io", Resource: "clusternodes"}

func TestTransientTellsOutagesFromAnswers(t *testing.T) {
	badAddr := &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "x"}}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("Get https://10.0.0.1/api: %w", syscall.ECONNREFUSED), true},
		{apierrors.NewServiceUnavailable("starting"), true},
		{apierrors.NewTooManyRequests("busy", 1), true},
		{apierrors.NewInternalError(errors.New("etcd")), true},
		{apierrors.NewForbidden(gr, "", errors.New("no")), false},
		{apierrors.NewNotFound(gr, ""), false},
		{apierrors.NewUnauthorized("token"), false},
		{badAddr, false}, // a malformed address will not heal by waiting
		{nil, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A list that fails because the API server is down is retried until it
// succeeds, at most maxDelay apart, asking ready first; one the API server
// refuses is returned at once.
func TestListerWatcherWaitsForTheAPIServerNotForItsAnswers(t *testing.T) {
	down := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	var lists, readies int
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
			lists++
			if lists < 4 {
				return nil, down
			}
			return &corev1.ConfigMapList{}, nil
		},
		WatchFuncWithContext: func(ctx context.Context, _ metav1.ListOptions) (watch.Interface, error) {
			return nil, apierrors.NewForbidden(gr, "", errors.New("no"))
		},
	}
	ready := func(context.Context) error {
		readies++
		if readies%2 == 1 {
			return errors.New("not ready")
		}
		return nil
	}
	w := ListerWatcher(lw, 20*time.Millisecond, ready, logr.Discard()).(cache.ListerWatcherWithContext)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.ListWithContext(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("list: %v, want success once the server answers", err)
	}
	if lists != 4 || readies < 6 {
		t.Fatalf("%d lists and %d readiness checks, want 4 lists, each retry after a successful check", lists, readies)
	}
	if _, err := w.WatchWithContext(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("watch: %v, want the Forbidden answer at once", err)
	}
	// A stopped informer stops the wait, with the last failure.
	lists = -1000
	stopped, stop := context.WithCancel(context.Background())
	stop()
	if _, err := w.ListWithContext(stopped, metav1.ListOptions{}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("list with a stopped context: %v, want the last failure", err)
	}
}
