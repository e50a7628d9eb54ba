// Package ociimage builds the project's container images as OCI image
// tarballs from Go binaries, without a Docker daemon or a registry (with
// go-containerregistry, as ko does), for the local cluster's containerd to
// import (`ctr -n k8s.io images import`).
//
// Every image is one static binary on a minimal base made here: /etc/passwd
// and /etc/group with root and nonroot (65532), the CA certificates of
// Debian's ca-certificates package, and an empty /tmp; nothing else. The
// manager image agrees with the Dockerfile (user, entrypoint, exposed ports);
// a test checks it.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CACertificates is where Debian's ca-certificates package puts the bundle;
// the images carry it at the same path, where Go's crypto/x509 looks.
const CACertificates = "/etc/ssl/certs/ca-certificates.crt"

// NonRoot is the user every image runs as, distroless's "nonroot".
const NonRoot = "65532:65532"

// Spec says what an image is: which Go package its one binary is built from,
// where the binary goes, and the runtime configuration.
type Spec struct {
	// Name is the short name used on the command line and in file names.
	Name string
	// Ref is the image reference the tarball is tagged with.
	Ref string
	// Package is the Go package of the binary (relative to the module root).
	Package string
	// Path is the binary's path in the image.
	Path string
	// Entrypoint, User and ExposedPorts ("8080/tcp") go into the config.
	Entrypoint   []string
	User         string
	ExposedPorts []string
}

// The project's images.
var (
	// Manager is the operator, as the Dockerfile builds it.
	Manager = Spec{
		Name:         "manager",
		Ref:          "localhost/skycall/skycall-manager:dev",
		Package:      "./cmd/manager",
		Path:         "/manager",
		Entrypoint:   []string{"/manager"},
		User:         NonRoot,
		ExposedPorts: []string{"8443/tcp", "8081/tcp"},
	}
	// Demo is cmd/skycall-demo: the node and sender pods of the cluster
	// tests and `make demo-cluster`.
	Demo = Spec{
		Name:         "demo",
		Ref:          "localhost/skycall/skycall-demo:dev",
		Package:      "./cmd/skycall-demo",
		Path:         "/skycall-demo",
		Entrypoint:   []string{"/skycall-demo"},
		User:         NonRoot,
		ExposedPorts: []string{"2528/tcp", "8080/tcp"},
	}
	// Pause is the pod sandbox image containerd is pinned to.
	Pause = Spec{
		Name:       "pause",
		Ref:        "localhost/skycall/pause:dev",
		Package:    "./hack/pause",
		Path:       "/pause",
		Entrypoint: []string{"/pause"},
		User:       NonRoot,
	}
	// Agent is cmd/skycall-agent, the sidecar of skynet pods.
	Agent = Spec{
		Name:         "agent",
		Ref:          "localhost/skycall/skycall-agent:dev",
		Package:      "./cmd/skycall-agent",
		Path:         "/skycall-agent",
		Entrypoint:   []string{"/skycall-agent"},
		User:         NonRoot,
		ExposedPorts: []string{"9090/tcp"},
	}
	// Skynet is a skynet build (hack/skynet.sh) with skycall's Lua service
	// (lua/skycall, in /skynet/skycall): no Go binary (Package is empty);
	// its files come from SkynetFiles. It runs from /skynet, so that the
	// relative paths of skynet's usual config (./service/?.lua, ...) hold.
	Skynet = Spec{
		Name:         "skynet",
		Ref:          "localhost/skycall/skynet:dev",
		Path:         "/skynet/skynet",
		Entrypoint:   []string{"/skynet/skynet"},
		User:         NonRoot,
		ExposedPorts: []string{"2528/tcp"},
	}
	// All is every image, by Name.
	All = []Spec{Pause, Manager, Demo, Agent, Skynet}
)

// epoch is every file's time, so that the same inputs give the same digest.
var epoch = time.Unix(0, 0).UTC()

type file struct {
	path string
	mode int64
	uid  int
	gid  int
	dir  bool
	data []byte
}

// Base is the minimal base image: users, groups, CA certificates, /tmp.
// caFile is the CA bundle to copy (normally CACertificates on the host).
func Base(caFile string) (v1.Image, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificates for the base image: %w (install Debian's ca-certificates package)", err)
	}
	files := []file{
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/ssl", mode: 0o755, dir: true},
		{path: "etc/ssl/certs", mode: 0o755, dir: true},
		{path: CACertificates[1:], mode: 0o644, data: ca},
		{path: "home", mode: 0o755, dir: true},
		{path: "home/nonroot", mode: 0o700, uid: 65532, gid: 65532, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
	}
	layer, err := layerOf(files)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.AppendLayers(img, layer)
}

// Build puts the binary at spec.Path on base, with spec's configuration.
func Build(spec Spec, base v1.Image, binary []byte) (v1.Image, error) {
	return build(spec, base, []file{{path: spec.Path[1:], mode: 0o755, data: binary}}, "/")
}

// File is a file (or, with Dir, a directory) of an image built with
// BuildFiles. Path is absolute.
type File struct {
	Path string
	Mode int64
	Dir  bool
	Data []byte
}

// BuildFiles puts files on base with spec's configuration, running in
// workDir. Parent directories missing from files are added (0755).
func BuildFiles(spec Spec, base v1.Image, files []File, workDir string) (v1.Image, error) {
	var out []file
	seen := map[string]bool{}
	var addDirs func(p string)
	addDirs = func(p string) {
		dir := path.Dir(p)
		if dir == "/" || dir == "." || seen[dir] {
			return
		}
		addDirs(dir)
		seen[dir] = true
		out = append(out, file{path: dir[1:], mode: 0o755, dir: true})
	}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("image %s: file path %q is not absolute", spec.Name, f.Path)
		}
		addDirs(f.Path)
		if f.Dir {
			if !seen[f.Path] {
				seen[f.Path] = true
				out = append(out, file{path: f.Path[1:], mode: f.Mode, dir: true})
			}
			continue
		}
		out = append(out, file{path: f.Path[1:], mode: f.Mode, data: f.Data})
	}
	return build(spec, base, out, workDir)
}

func build(spec Spec, base v1.Image, files []file, workDir string) (v1.Image, error) {
	layer, err := layerOf(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = nil
	cf.Config.User = spec.User
	cf.Config.WorkingDir = workDir
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=" + CACertificates}
	cf.Config.ExposedPorts = nil
	if len(spec.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// Write writes img as an image tarball tagged spec.Ref, the format `ctr
// images import` and `docker load` read.
func Write(path string, spec Spec, img v1.Image) error {
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		return fmt.Errorf("image %s: %w", spec.Name, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("writing image %s to %s: %w", spec.Ref, path, err)
	}
	return nil
}

// Files lists the paths in an image's layers (without the leading slash),
// for tests and for looking at what an image holds.
func Files(img v1.Image) ([]string, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			paths = append(paths, h.Name)
		}
		rc.Close()
	}
	sort.Strings(paths)
	return paths, nil
}

func layerOf(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: epoch, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
