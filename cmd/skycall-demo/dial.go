package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// runDial opens a TCP connection to each address, rounds times, one round a
// second, and prints one line per attempt:
//
//	ADDR connected in D
//	ADDR refused in D: ERROR
//	ADDR timed out in D
//
// The cluster test runs it in pods to see what a NetworkPolicy lets through.
func runDial(args []string) error {
	fs := flag.NewFlagSet("dial", flag.ExitOnError)
	to := fs.String("to", "", "comma-separated host:port addresses (required)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long one connection attempt may take")
	rounds := fs.Int("rounds", 1, "how many times to try each address, a second apart")
	_ = fs.Parse(args)
	if *to == "" {
		return errors.New("--to is required")
	}
	for r := range *rounds {
		if r > 0 {
			time.Sleep(time.Second)
		}
		for _, addr := range strings.Split(*to, ",") {
			fmt.Println(dialOnce(addr, *timeout))
		}
	}
	return nil
}

func dialOnce(addr string, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	began := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	took := time.Since(began)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Sprintf("%s connected in %v", addr, took)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("%s timed out in %v", addr, took)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH):
		return fmt.Sprintf("%s refused in %v: %v", addr, took, err)
	default:
		return fmt.Sprintf("%s failed in %v: %v", addr, took, err)
	}
}
