package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// proc is a child process whose standard output is shown with a prefix and
// kept, so the demo can wait for a line and check what was printed.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string
	added *sync.Cond
	done  chan struct{}
	err   error
}

// startProc runs bin in a process group of its own. Standard output goes to
// the terminal (prefixed) and is kept; standard error goes to logFile when
// set, else to the terminal.
func startProc(name, logFile string, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		cmd.Stderr = f
	} else {
		cmd.Stderr = os.Stderr
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	p.added = sync.NewCond(&p.mu)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go p.read(stdout)
	return p, nil
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fmt.Printf("    %-7s| %s\n", p.name, line)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.added.Broadcast()
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.done)
	p.mu.Lock()
	p.added.Broadcast()
	p.mu.Unlock()
}

// waitLine waits for an output line matching re and returns its submatches.
func (p *proc) waitLine(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.added.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; i++ {
		for ; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				return m, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited (%v) before printing a line matching %q", p.name, p.err, re)
		default:
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s printed no line matching %q: %w", p.name, re, ctx.Err())
		}
		p.added.Wait()
		i--
	}
}

// output returns every line printed so far.
func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// wait waits for the process to exit on its own.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", p.name, ctx.Err())
	}
}

// stop asks the process group to terminate, then kills it after a grace
// period; it returns once the process has exited.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
