package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// child is a process of this program under measurement: the skycall Server
// or a relay. It prints one line when ready and runs until its standard
// input closes.
type child struct {
	cmd *exec.Cmd
	// Held open (a dropped *os.File would be closed by its finalizer) until
	// stop, or until this process dies: either way the child then exits.
	stdin io.WriteCloser
}

// startChild starts this program with args and returns the line it prints
// once ready.
func startChild(what string, args ...string) (*child, string, error) {
	c := &child{cmd: exec.Command(os.Args[0], args...)}
	c.cmd.Stderr = os.Stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, "", err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start the %s process: %w", what, err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		c.stop()
		return nil, "", fmt.Errorf("the %s process printed nothing: %w", what, err)
	}
	return c, strings.TrimSpace(line), nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop closes the child's standard input and waits for it to exit, killing
// it after 5 s.
func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
