package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/skycall-io/skycall/cmd/skycall/internal/lualit"
	"github.com/skycall-io/skycall/sender"
	"github.com/skycall-io/skycall/sender/luaseri"
)

const callLong = `Call the service at ADDR on NODE, as skynet's cluster.call does, and print
its reply.

ADDR is a cluster name ("@store", as registered with cluster.register), a
local name (".store"), or a numeric handle (10 or ":0000000a", as query
prints). Each ARG is one or more Lua literals separated by commas; the shell
removes quotes, so quote strings twice: "'get'" or "'get', 'k'". A negative
number on its own needs -- before the arguments (-- -42). They are packed
with skynet.pack, as cluster.call packs its arguments.

The reply is printed as Lua literals, one value a line (-o lua, the default),
as a JSON array (-o json: a table becomes an array, or an object whose keys
that are not strings are written as Lua literals, "10" or "true"; strings
that are not UTF-8 become {"base64": "..."}; inf and nan become strings),
or as its bytes (-o raw). With --raw the
request is the bytes of a file (or - for standard input), sent unpacked, and
the reply is printed raw unless -o says otherwise.`

const callExample = `  # cluster.call("db", "@store", "get", "k")
  skycall call db @store "'get'" "'k'"

  # Several values in one argument, tables included
  skycall call db @store "'set', 'k', {hp=100, tags={'a', 'b'}}"

  # The reply as JSON, for jq
  skycall call db @store "'get'" "'k'" -o json | jq .

  # Bytes in, bytes out
  printf 'ping' | skycall call db .echo --raw - > reply.bin`

const sendLong = `Send a message to the service at ADDR on NODE, as skynet's cluster.send
does: no reply is expected. ADDR and ARGs are as for call.

send returns once the node has received the message: it is followed by a
round trip on the same connection, which the node answers only after it has
read everything sent before. If the node rejects the message (for example
"Invalid name" for a service it does not have), send says so and exits 6.
Whether the service then handled it without error cannot be known: a push
gets no reply.`

const sendExample = `  # cluster.send("db", "@log", "info", "hello")
  skycall send db @log "'info', 'hello'"

  # Raw bytes from a file
  skycall send db .sink --raw message.bin`

type callOptions struct {
	*globalOptions
	push   bool
	raw    string
	output string
}

func newCallCommand(g *globalOptions, push bool) *cobra.Command {
	o := &callOptions{globalOptions: g, push: push}
	c := &cobra.Command{
		Use:     "call NODE ADDR [ARG...]",
		Short:   "Call a service on a node and print its reply",
		Long:    callLong,
		Example: callExample,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0], args[1], args[2:])
		},
		ValidArgsFunction: g.completeNode,
	}
	if push {
		c.Use, c.Short, c.Long, c.Example = "send NODE ADDR [ARG...]", "Send a message to a service on a node (no reply)", sendLong, sendExample
	} else {
		c.Flags().StringVarP(&o.output, "output", "o", "", "reply format: lua, json or raw (default lua; raw with --raw)")
		_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"lua", "json", "raw"}, cobra.ShellCompDirectiveNoFileComp))
	}
	c.Flags().StringVar(&o.raw, "raw", "", "send the bytes of this file (- for standard input) instead of packed ARGs")
	return c
}

func (o *callOptions) run(ctx context.Context, node, addr string, args []string) error {
	payload, err := o.payload(args)
	if err != nil {
		return err
	}
	output := o.output
	if output == "" {
		output = "lua"
		if o.raw != "" {
			output = "raw"
		}
	}
	if output != "lua" && output != "json" && output != "raw" {
		return usagef("-o %q: want lua, json or raw", output)
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	src, entry, err := o.openNode(ctx, node)
	if err != nil {
		return err
	}
	defer src.Close()
	log := newRejectLog(o.logger())
	metrics := prometheus.NewRegistry()
	c := o.newClient(src, sender.WithLogger(log.logger()), sender.WithRegisterer(metrics))
	defer c.Close()

	if o.push {
		err := send(ctx, c, node, addr, payload)
		if err == nil {
			if err = confirm(ctx, c, node); err != nil {
				// The confirming query is queued behind the message, so
				// a query that was not sent means the message was not.
				err = fmt.Errorf("the message to %s on node %q was queued, but the node did not confirm receiving it: %w", addr, node, err)
			}
		}
		if err == nil {
			err = log.rejected(metrics, node, addr)
		}
		return explain(err, node, entry, o.timeout)
	}
	reply, err := call(ctx, c, node, addr, payload)
	if err != nil {
		return explain(err, node, entry, o.timeout)
	}
	return printReply(o.out, output, node, reply)
}

// payload is the packed ARGs, or the bytes --raw names.
func (o *callOptions) payload(args []string) ([]byte, error) {
	if o.raw != "" {
		if len(args) > 0 {
			return nil, usagef("--raw sends the bytes of %s: give no ARGs with it", o.raw)
		}
		var r io.Reader = o.in
		if o.raw != "-" {
			f, err := os.Open(o.raw)
			if err != nil {
				return nil, usageError{fmt.Errorf("--raw: %w", err)}
			}
			defer f.Close()
			r = f
		}
		// The library bounds a message at 16 MiB; read one byte more to
		// say so rather than cut it.
		b, err := io.ReadAll(io.LimitReader(r, 16<<20+1))
		if err != nil {
			return nil, fmt.Errorf("--raw %s: %w", o.raw, err)
		}
		return b, nil
	}
	vals, err := parseArgs(args)
	if err != nil {
		return nil, err
	}
	b, err := luaseri.Pack(vals...)
	if err != nil {
		return nil, usageError{err}
	}
	return b, nil
}

// parseArgs reads each command-line argument as a comma-separated list of
// Lua literals.
func parseArgs(args []string) ([]any, error) {
	var vals []any
	for i, a := range args {
		v, err := lualit.ParseList(a)
		if err != nil {
			hint := ""
			if a != "" && isIdentStart(a[0]) {
				hint = fmt.Sprintf(`; the shell removed any quotes: for the string write "'%s'"`, a)
			}
			return nil, usagef("argument %d: %v%s", i+1, err, hint)
		}
		if len(v) == 0 {
			return nil, usagef("argument %d is empty: write nil for a nil value", i+1)
		}
		vals = append(vals, v...)
	}
	return vals, nil
}

// handleArg reads a numeric service address ("10"), which the library takes
// as a handle rather than a name.
func handleArg(addr string) (uint32, bool) {
	h, err := strconv.ParseUint(addr, 10, 32)
	return uint32(h), err == nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func call(ctx context.Context, c *sender.Client, node, addr string, payload []byte) ([]byte, error) {
	if h, ok := handleArg(addr); ok {
		return c.CallHandle(ctx, node, h, payload)
	}
	return c.Call(ctx, node, addr, payload)
}

func send(ctx context.Context, c *sender.Client, node, addr string, payload []byte) error {
	if h, ok := handleArg(addr); ok {
		return c.SendHandle(ctx, node, h, payload)
	}
	return c.Send(ctx, node, addr, payload)
}

// probeName is queried for a round trip that every node answers at once
// with "name not found", skynet nodes and skycall Servers alike: it is no
// service's name, and a query is answered by the node's cluster agent itself,
// behind everything sent before it on the connection.
const probeName = "__skycall_probe"

// confirm makes one round trip to node. Its answer means the node has read
// every message sent before it on the connection.
func confirm(ctx context.Context, c *sender.Client, node string) error {
	_, err := c.Query(ctx, node, probeName)
	var re *sender.RemoteError
	if errors.As(err, &re) {
		return nil
	}
	if err == nil {
		return nil // a service really has that name: still a round trip
	}
	return err
}

func printReply(w io.Writer, output, node string, reply []byte) error {
	if output == "raw" {
		_, err := w.Write(reply)
		return err
	}
	vals, err := luaseri.Unpack(reply)
	if err != nil {
		return fmt.Errorf("the reply of node %q (%d bytes) is not skynet.pack'ed: %w; use -o raw to see its bytes", node, len(reply), err)
	}
	if output == "json" {
		return writeJSON(w, jsonValues(vals))
	}
	for _, v := range vals {
		fmt.Fprintln(w, lualit.Format(v))
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
