// Command ociimage builds the project's images as OCI image tarballs from
// this work tree, without Docker: each image's Go binary is built
// (CGO_ENABLED=0) and put on the minimal base of test/ociimage; the skynet
// image carries skynet's build (hack/skynet.sh), skycall's Lua service and
// the host's shared libraries skynet loads.
//
//	go run ./hack/ociimage -out DIR [pause] [manager] [demo] [agent] [skynet]
//
// writes DIR/NAME.tar for each (all of them by default), tagged
// localhost/skycall/...:dev, for `ctr -n k8s.io images import`.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skycall-io/skycall/test/ociimage"
	"github.com/skycall-io/skycall/test/repo"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

func main() {
	out := flag.String("out", "", "directory to write NAME.tar into (required)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: ociimage -out DIR [pause] [manager] [demo] [agent] [skynet]")
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
				return fmt.Errorf("no image %q (want pause, manager, demo, agent or skynet)", n)
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
		if s.Package == "" { // skynet: files, not a Go binary
			if err := writeSkynet(out, s, base); err != nil {
				return err
			}
			continue
		}
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

// writeSkynet builds the skynet image from the skynet build of
// hack/skynet.sh (built first if missing) and this tree's lua/skycall.
func writeSkynet(out string, s ociimage.Spec, base v1.Image) error {
	dir, err := skynetpeer.Dir()
	if err != nil {
		return fmt.Errorf("image %s: %w", s.Ref, err)
	}
	root, err := repo.Root()
	if err != nil {
		return err
	}
	files, err := ociimage.SkynetFiles(dir, filepath.Join(root, "lua", "skycall"))
	if err != nil {
		return fmt.Errorf("image %s: %w", s.Ref, err)
	}
	img, err := ociimage.BuildFiles(s, base, files, "/skynet")
	if err != nil {
		return fmt.Errorf("image %s: %w", s.Ref, err)
	}
	path := filepath.Join(out, s.Name+".tar")
	if err := ociimage.Write(path, s, img); err != nil {
		return err
	}
	fmt.Printf("%s %s\n", s.Ref, path)
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
