package localcp

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

// Process is a child process whose standard output is kept (and echoed with
// a prefix), so that a caller can wait for a line and check what it printed.
type Process struct {
	Name string
	cmd  *exec.Cmd
	echo io.Writer

	mu    sync.Mutex
	lines []string
	added *sync.Cond
	done  chan struct{}
	err   error
}

// StartProcess runs bin in a process group of its own, with env added to
// this process's environment. Standard output is kept and, when echo is not
// nil, copied to it line by line with the name as a prefix; standard error
// goes to logFile when set, else to echo (or nowhere).
func StartProcess(name, logFile string, echo io.Writer, env []string, bin string, args ...string) (*Process, error) {
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
		defer f.Close() // the child has its own descriptor once started
	} else if echo != nil {
		cmd.Stderr = echo
	}
	p := &Process{Name: name, cmd: cmd, echo: echo, done: make(chan struct{})}
	p.added = sync.NewCond(&p.mu)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go p.read(stdout)
	return p, nil
}

func (p *Process) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p.echo != nil {
			fmt.Fprintf(p.echo, "    %-7s| %s\n", p.Name, line)
		}
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

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// WaitLine waits for an output line matching re and returns its submatches.
func (p *Process) WaitLine(ctx context.Context, re *regexp.Regexp) ([]string, error) {
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
			return nil, fmt.Errorf("%s exited (%v) before printing a line matching %q", p.Name, p.err, re)
		default:
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s printed no line matching %q: %w", p.Name, re, ctx.Err())
		}
		p.added.Wait()
		i--
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Output returns every line printed so far.
func (p *Process) Output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Wait waits for the process to exit on its own.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", p.Name, ctx.Err())
	}
}

// Kill kills the process group at once, as a crash would, and returns once
// the process has exited.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s had already exited", p.Name)
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", p.Name, err)
	}
	<-p.done
	return nil
}

// Stop asks the process group to terminate, then kills it after a grace
// period; it returns once the process has exited.
func (p *Process) Stop() {
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
