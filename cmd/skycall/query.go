package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

const queryLong = `Ask NODE for the numeric handle of the service registered under NAME with
skynet's cluster.register, as cluster.query does. NAME may be written with
or without its '@'. The handle is printed as skynet writes addresses
(":0000000a"), usable as the ADDR of call and send.`

const queryExample = `  skycall query db store
  skycall query db @store -o json`

func newQueryCommand(g *globalOptions) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:     "query NODE NAME",
		Short:   "Look up the handle of a service name on a node",
		Long:    queryLong,
		Example: queryExample,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usagef("-o %q: want text or json", output)
			}
			return g.query(cmd.Context(), args[0], strings.TrimPrefix(args[1], "@"), output)
		},
		ValidArgsFunction: g.completeNode,
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return c
}

func (o *globalOptions) query(ctx context.Context, node, name, output string) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	src, entry, err := o.openNode(ctx, node)
	if err != nil {
		return err
	}
	defer src.Close()
	c := o.newClient(src)
	defer c.Close()
	h, err := c.Query(ctx, node, name)
	if err != nil {
		return explain(err, node, entry, o.timeout)
	}
	if output == "json" {
		return writeJSON(o.out, map[string]any{"node": node, "name": name, "handle": h, "address": fmt.Sprintf(":%08x", h)})
	}
	_, err = fmt.Fprintf(o.out, ":%08x\n", h)
	return err
}

// completeNode completes the first argument with the registry's node names.
func (o *globalOptions) completeNode(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), min(o.timeout, 5*time.Second))
	defer cancel()
	src, err := o.openSource()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	defer src.Close()
	names, err := src.names(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
