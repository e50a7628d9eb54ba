// Command ociimage builds the project's images as OCI image tarballs from
// this work tree, without Docker: each image's Go binary is built
// (CGO_ENABLED=0) and put on the minimal base of test/ociimage.
//
//	go run ./hack/ociimage -out DIR [pause] [manager] [demo]
//
// writes DIR/NAME.tar for each (all three by default), tagged
// localhost/skycall/...:dev, for `ctr -n k8s.io images import`.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/skycall-io/skycall/test/ociimage"
)

func main() {
	out := flag.String("out", "", "directory to write NAME.tar into (required)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: ociimage -out DIR [pause] [manager] [demo]")
		os.Exit(2)
	}
	if err := run(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(out string, names []string) error {
	specs := ociimage.All
	if len(names) > 0 {
		specs = nil
		for _, n := range names {
			s, ok := find(n)
			if !ok {
				return fmt.Errorf("no image %q (want pause, manager or demo)", n)
			}
			specs = append(specs, s)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	base, err := ociimage.Base(ociimage.CACertificates)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ociimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, s := range specs {
		bin := filepath.Join(tmp, s.Name)
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, s.Package)
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building %s for image %s: %w", s.Package, s.Ref, err)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		img, err := ociimage.Build(s, base, data)
		if err != nil {
			return fmt.Errorf("image %s: %w", s.Ref, err)
		}
		path := filepath.Join(out, s.Name+".tar")
		if err := ociimage.Write(path, s, img); err != nil {
			return err
		}
		fmt.Printf("%s %s\n", s.Ref, path)
	}
	return nil
}

func find(n string) (ociimage.Spec, bool) {
	for _, s := range ociimage.All {
		if strings.EqualFold(s.Name, n) {
			return s, true
		}
	}
	return ociimage.Spec{}, false
}
