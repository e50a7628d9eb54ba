package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/klog/v2"

	"github.com/skycall-io/skycall/sender"
)

// streams are the command's standard input, output and error, so that tests
// run commands in-process and read what a user would see.
type streams struct {
	in     io.Reader
	out    io.Writer
	errOut io.Writer
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	streams
	registry   string
	kubeconfig string
	kubeCtx    string
	namespace  string
	timeout    time.Duration
	verbose    bool

	// TLS to skycall Servers built with server.WithTLS (skynet speaks plain TCP).
	tls        bool
	caFile     string
	serverName string
	insecure   bool
	tlsConfig  *tls.Config // from the flags above; nil: plain TCP

	// tty says whether errOut is a terminal (live progress lines).
	tty bool
}

const rootLong = `skycall talks to the nodes of a skynet cluster over skynet's cluster
protocol (cluster.call, cluster.send), as grpcurl does for gRPC. It reaches
skynet nodes and skycall Servers alike.

Where nodes live (the registry), first match wins:
  --registry file:PATH                 a skynet cluster config file (db = "10.0.0.7:2528")
  --registry static:NAME=HOST:PORT,...  nodes given here (NAME=false marks one down)
  $SKYCALL_REGISTRY                    the same forms, when --registry is not given
  otherwise                            the ClusterNodes of the kubeconfig's current
                                       context and namespace (-n, --context, --kubeconfig),
                                       as the skycall operator resolves them

Arguments and replies are Lua literals: 'get' 'k' 42 3.5 true nil {a=1, 2}.
Quote them for the shell: skycall call db @store "'get'" "'k'".

Exit codes:
  0  success
  1  any other failure
  2  usage: unknown command or flag, wrong number of arguments, bad Lua literal
  3  unknown node: not in the registry
  4  node down or not ready in the registry
  5  timeout: no answer within --timeout
  6  the node answered with an error (service failed, "Invalid name", "name not found")
  7  connection: refused, lost during a call, or a different node at the address
  8  registry unavailable: kubeconfig, API server, permissions, bad registry file
  130 interrupted (Ctrl-C) before the command finished`

const rootExample = `  # The nodes of the current namespace's ClusterNodes, with reachability
  skycall nodes

  # Call a service on node db with a skynet cluster config file
  skycall --registry file:cluster.lua call db @store "'get'" "'k'"

  # Without any registry: name the node's address
  skycall --registry static:db=127.0.0.1:2528 ping db`

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, s streams, name string) int {
	o := &globalOptions{streams: s}
	if f, ok := s.errOut.(*os.File); ok {
		o.tty = term.IsTerminal(int(f.Fd()))
	}
	root := newRootCommand(o, name)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		code = exitInterrupted // as a shell reports a command ended by Ctrl-C
	}
	fmt.Fprintf(s.errOut, "Error: %v\n", err)
	if code == exitUsage {
		fmt.Fprintf(s.errOut, "See '%s --help'.\n", commandPath(root, args))
	}
	return code
}

// commandPath names the subcommand that failed, for the usage hint.
func commandPath(root *cobra.Command, args []string) string {
	if c, _, err := root.Find(args); err == nil && c != nil {
		return c.CommandPath()
	}
	return root.CommandPath()
}

func newRootCommand(o *globalOptions, name string) *cobra.Command {
	root := &cobra.Command{
		Use:           "skycall",
		Short:         "Call, send to, ping and load-test the nodes of a skynet cluster",
		Long:          rootLong,
		Example:       strings.ReplaceAll(rootExample, "skycall ", name+" "),
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: name},
	}
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		// client-go logs through klog to standard error (a Kubernetes
		// registry's failed list, for one), which the error the command
		// returns already says. With -v, klog goes where the library's
		// log goes.
		klog.SetLogger(o.logger())
		if o.timeout <= 0 {
			return usagef("--timeout %v: want a positive duration", o.timeout)
		}
		return o.loadTLS()
	}
	root.SetIn(o.in)
	root.SetOut(o.out)
	root.SetErr(o.errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if negativeNumber.MatchString(err.Error()) {
			err = fmt.Errorf("%w (a negative number as an argument needs -- before the arguments: call NODE ADDR -- -42, or write it in a list: \"'x', -42\")", err)
		}
		return usageError{err}
	})

	f := root.PersistentFlags()
	f.StringVar(&o.registry, "registry", "", "where nodes are: file:PATH or static:NAME=HOST:PORT,... (default $SKYCALL_REGISTRY, else the ClusterNodes of the kubeconfig's namespace)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.kubeCtx, "context", "", "the kubeconfig context to use (default its current context)")
	f.StringVarP(&o.namespace, "namespace", "n", "", "the namespace of the ClusterNodes (default the context's namespace)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the node, its connection and each reply")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log connection state changes of the sender library to standard error")
	f.BoolVar(&o.tls, "tls", false, "speak TLS to the nodes (skycall Servers built with server.WithTLS; skynet nodes speak plain TCP)")
	f.StringVar(&o.caFile, "cacert", "", "with --tls: PEM file of the certificate authorities to trust (default the system's); implies --tls")
	f.StringVar(&o.serverName, "servername", "", "with --tls: the name to verify in the node's certificate (default the host of its address)")
	f.BoolVar(&o.insecure, "insecure", false, "with --tls: do not verify the node's certificate (testing only)")

	root.AddCommand(
		newNodesCommand(o),
		newCallCommand(o, false),
		newCallCommand(o, true),
		newQueryCommand(o),
		newPingCommand(o),
		newBenchCommand(o),
	)
	for _, c := range root.Commands() {
		c.Example = strings.ReplaceAll(c.Example, "skycall ", name+" ")
	}
	// cobra adds these when it runs; added now, their arguments are
	// checked as the others' are.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	argsAsUsage(root)
	return root
}

// argsAsUsage makes every argument check in the command tree a usage
// error (exit 2), cobra's own included: a word that names no command, a
// help topic that names none, an argument a command does not take.
func argsAsUsage(c *cobra.Command) {
	switch {
	case c.Name() == "help":
		c.Args = helpTopic
	case c.Args != nil:
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	case c.HasSubCommands():
		c.Args = unknownCommand
	}
	if c.HasSubCommands() && !c.Runnable() {
		// A command that only groups others shows its help, and must be
		// runnable for cobra to check its arguments at all.
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		argsAsUsage(sub)
	}
}

// unknownCommand refuses arguments to a command that only groups others,
// with cobra's suggestions.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
	}
	return usageError{errors.New(msg)}
}

// helpTopic refuses `help WORDS` when WORDS name no command.
func helpTopic(cmd *cobra.Command, args []string) error {
	c, rest, err := cmd.Root().Find(args)
	if err != nil {
		return usageError{err}
	}
	if len(rest) > 0 && c.HasSubCommands() {
		return usagef("unknown help topic %q", strings.Join(args, " "))
	}
	return nil
}

// newClient returns a sender Client on src, with the options a one-shot
// command wants: connection attempts bounded by --timeout, and the library's
// log (at -v) on standard error.
func (o *globalOptions) newClient(src *source, extra ...sender.Option) *sender.Client {
	opts := []sender.Option{
		sender.WithConnectTimeout(o.timeout),
		sender.WithLogger(o.logger()),
		// A command line retries quickly: the user is waiting.
		sender.WithBackoff(50*time.Millisecond, time.Second),
	}
	if o.tlsConfig != nil {
		opts = append(opts, sender.WithTLS(o.tlsConfig))
	}
	return sender.New(src.reg, append(opts, extra...)...)
}

// loadTLS builds the TLS configuration the flags ask for, before anything
// connects, so that a bad --cacert is a usage error.
func (o *globalOptions) loadTLS() error {
	if !o.tls && o.caFile == "" && o.serverName == "" && !o.insecure {
		return nil
	}
	cfg := &tls.Config{ServerName: o.serverName, InsecureSkipVerify: o.insecure, MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return usagef("--cacert: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return usagef("--cacert %s: no PEM certificate in it", o.caFile)
		}
	}
	o.tlsConfig = cfg
	return nil
}

func (o *globalOptions) logger() logr.Logger {
	if !o.verbose {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) {
		if prefix != "" {
			fmt.Fprintf(o.errOut, "%s: %s\n", prefix, args)
		} else {
			fmt.Fprintln(o.errOut, args)
		}
	}, funcr.Options{Verbosity: 1})
}

// negativeNumber recognises pflag's complaint about an argument like -42.
var negativeNumber = regexp.MustCompile(`in -[0-9.]`)

// Exit codes; see rootLong.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitUnknownNode = 3
	exitNodeDown    = 4
	exitTimeout     = 5
	exitRemote      = 6
	exitConnection  = 7
	exitRegistry    = 8
	exitInterrupted = 130
)

// usageError marks a mistake in the command line itself.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// notReadyError is a node the registry knows but cannot give an address for.
type notReadyError struct{ err error }

func (e notReadyError) Error() string { return e.err.Error() }
func (e notReadyError) Unwrap() error { return e.err }

// exitCode maps an error to the exit code documented in rootLong, from the
// library's typed errors.
func exitCode(err error) int {
	var ue usageError
	var nr notReadyError
	var re *sender.RemoteError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, sender.ErrUnknownNode):
		return exitUnknownNode
	case errors.Is(err, sender.ErrNodeDown), errors.As(err, &nr):
		return exitNodeDown
	case errors.Is(err, sender.ErrRegistry):
		return exitRegistry
	case errors.As(err, &re):
		return exitRemote
	case errors.Is(err, sender.ErrConnectionLost), errors.Is(err, sender.ErrWrongNode), errors.As(err, new(*net.OpError)),
		errors.As(err, new(*tls.CertificateVerificationError)), errors.As(err, new(tls.RecordHeaderError)):
		// A call that timed out queued wraps the last connection error
		// too: the connection, not the wait, is what to fix.
		return exitConnection
	case errors.Is(err, context.DeadlineExceeded):
		return exitTimeout
	}
	return exitError
}
