// Command skycall-demo is the end-to-end demo behind `make demo`, and the
// node and sender processes that the end-to-end tests run.
//
//	skycall-demo run  [--manager bin/manager]   the whole demo (see run.go)
//	skycall-demo node --name beta [--listen 127.0.0.1:0]
//	skycall-demo send --to alpha,beta [--count 6]
//	skycall-demo sender [--listen :8080]           a long-lived sender pod
//	skycall-demo cluster [--count 6]               `make demo-cluster` (root)
//	skycall-demo dial --to 10.0.0.1:2528           can this pod connect there?
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runDemo(os.Args[2:])
	case "node":
		err = runNode(os.Args[2:])
	case "send":
		err = runSend(os.Args[2:])
	case "sender":
		err = runSender(os.Args[2:])
	case "cluster":
		err = runCluster(os.Args[2:])
	case "dial":
		err = runDial(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "skycall-demo %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: skycall-demo run|cluster|node|send|sender|dial [flags]; see -h of each")
	os.Exit(2)
}
