package ociimage_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skycall-io/skycall/test/ociimage"
	"github.com/skycall-io/skycall/test/repo"
)

// dockerStage is what a Dockerfile stage gives the image Docker users run.
type dockerStage struct {
	user, workdir string
	entrypoint    []string
	ports         []string
}

// dockerfileStage reads USER, WORKDIR, ENTRYPOINT and EXPOSE of the
// Dockerfile's stage named name ("FROM … AS name"), or of its last stage
// (what a plain `docker build .` makes) when name is "".
func dockerfileStage(t *testing.T, name string) dockerStage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages := map[string]dockerStage{}
	var cur dockerStage
	curName, last := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		word, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(word) {
		case "FROM": // a new stage
			if last != "" {
				stages[curName] = cur
			}
			cur, curName = dockerStage{}, ""
			if f := strings.Fields(rest); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				curName = f[2]
			}
			last = "FROM"
		case "USER":
			cur.user = strings.TrimSpace(rest)
		case "WORKDIR":
			cur.workdir = strings.TrimSpace(rest)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &cur.entrypoint); err != nil {
				t.Fatalf("Dockerfile ENTRYPOINT %q is not the JSON (exec) form: %v", rest, err)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				cur.ports = append(cur.ports, p)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	stages[curName] = cur
	if name == "" {
		sort.Strings(cur.ports)
		return cur
	}
	st, ok := stages[name]
	if !ok {
		t.Fatalf("the Dockerfile has no stage %q (FROM … AS %s)", name, name)
	}
	sort.Strings(st.ports)
	return st
}

// repoRoot is the repository root (test/repo).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// baseImage is the base from this machine's CA bundle; without one the test
// skips, or fails in CI (CI=true), where hack/cluster-tools.sh installs it.
func baseImage(t *testing.T) v1.Image {
	t.Helper()
	base, err := ociimage.Base(ociimage.CACertificates)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("%v; skipping", err)
	}
	return base
}

// TestImagesAgreeWithTheirDockerfileStage: the images the local cluster
// builds without Docker (hack/ociimage) run as the Dockerfile's targets do,
// so that a manifest tested here works with the images Docker users build.
func TestImagesAgreeWithTheirDockerfileStage(t *testing.T) {
	base := baseImage(t)
	for _, c := range []struct {
		spec  ociimage.Spec
		stage string // "" is the last stage, `docker build .`
	}{
		{ociimage.Manager, ""},
		{ociimage.Manager, "manager"},
		{ociimage.Agent, "agent"},
		{ociimage.Skynet, "skynet"},
	} {
		t.Run(c.spec.Name+"/"+c.stage, func(t *testing.T) {
			var img v1.Image
			var err error
			if c.spec.Package == "" { // skynet: files on a working directory
				img, err = ociimage.BuildFiles(c.spec, base, []ociimage.File{{Path: c.spec.Path, Mode: 0o755, Data: []byte("#!binary")}}, "/skynet")
			} else {
				img, err = ociimage.Build(c.spec, base, []byte("#!binary"))
			}
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			var ports []string
			for p := range cf.Config.ExposedPorts {
				ports = append(ports, p)
			}
			sort.Strings(ports)

			want := dockerfileStage(t, c.stage)
			if cf.Config.User != want.user {
				t.Errorf("user: image %q, Dockerfile %q", cf.Config.User, want.user)
			}
			if !reflect.DeepEqual(cf.Config.Entrypoint, want.entrypoint) {
				t.Errorf("entrypoint: image %q, Dockerfile %q", cf.Config.Entrypoint, want.entrypoint)
			}
			if !reflect.DeepEqual(ports, want.ports) {
				t.Errorf("exposed ports: image %v, Dockerfile %v", ports, want.ports)
			}
			if want.workdir != "" && cf.Config.WorkingDir != want.workdir {
				t.Errorf("working directory: image %q, Dockerfile %q", cf.Config.WorkingDir, want.workdir)
			}
		})
	}
}

// dockerignored says whether Docker leaves path (slash-separated, relative
// to the repository root) out of the build context, for the pattern forms
// .dockerignore uses: "*", "dir/", "**/*_test.go", "**/testdata/", each
// optionally negated with "!"; the last matching pattern wins.
func dockerignored(t *testing.T, patterns []string, path string) bool {
	t.Helper()
	ignored := false
	parts := strings.Split(path, "/")
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimSuffix(strings.TrimPrefix(p, "!"), "/")
		var match bool
		switch {
		case p == "*":
			match = true
		case strings.HasPrefix(p, "**/"):
			for _, part := range parts {
				if ok, _ := filepath.Match(strings.TrimPrefix(p, "**/"), part); ok {
					match = true
				}
			}
		case !strings.ContainsAny(p, "*?["):
			match = path == p || strings.HasPrefix(path, p+"/")
		default:
			t.Fatalf(".dockerignore pattern %q is of a form this test does not read; teach dockerignored it", p)
		}
		if match {
			ignored = !neg
		}
	}
	return ignored
}

// TestDockerBuildContextHoldsWhatTheImagesAreBuiltFrom: .dockerignore lets
// through every package the Go images are built from and every file the
// Dockerfile copies, so `docker build` does not fail on a user's machine
// (there is no Docker engine here to try it).
func TestDockerBuildContextHoldsWhatTheImagesAreBuiltFrom(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Module.Path}} {{.Dir}}{{end}}", "./cmd/manager", "./cmd/skycall-agent")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	absRoot, _ := filepath.Abs(root)
	var need []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		mod, dir, _ := strings.Cut(line, " ")
		if mod != "github.com/skycall-io/skycall" {
			continue
		}
		rel, err := filepath.Rel(absRoot, dir)
		if err != nil {
			t.Fatal(err)
		}
		need = append(need, filepath.ToSlash(rel)+"/x.go")
	}
	lua, _ := filepath.Glob(filepath.Join(root, "lua", "skycall", "*.lua"))
	for _, p := range lua {
		need = append(need, "lua/skycall/"+filepath.Base(p))
	}
	need = append(need, "go.mod", "go.sum")
	if len(need) < 8 {
		t.Fatalf("found only %v to check", need)
	}
	for _, p := range need {
		if dockerignored(t, patterns, p) {
			t.Errorf(".dockerignore leaves %s out of the build context: docker build would fail", p)
		}
	}
	for _, p := range []string{"cmd/manager/main_test.go", "charts/skycall/values.yaml", "test/cluster/cluster.go"} {
		if !dockerignored(t, patterns, p) {
			t.Errorf(".dockerignore sends %s to the builder", p)
		}
	}
}

func TestImageHoldsOnlyBaseAndBinaryAndRunsAsNonRoot(t *testing.T) {
	base := baseImage(t)
	img, err := ociimage.Build(ociimage.Demo, base, []byte("#!binary"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := ociimage.Files(img)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
		"home/", "home/nonroot/", "skycall-demo", "tmp/"}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files in the image:\n got %q\nwant %q", files, want)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" {
		t.Errorf("config: user %q os %q, want 65532:65532 on linux", cf.Config.User, cf.OS)
	}
}

func TestWrittenTarballLoadsWithItsTag(t *testing.T) {
	base := baseImage(t)
	img, err := ociimage.Build(ociimage.Pause, base, []byte("#!binary"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pause.tar")
	if err := ociimage.Write(path, ociimage.Pause, img); err != nil {
		t.Fatal(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != ociimage.Pause.Ref {
		t.Fatalf("tarball manifest %+v, want one image tagged %s", m, ociimage.Pause.Ref)
	}
	// The tarball's manifest is Docker's; the config and layers are the same.
	want, _ := img.ConfigName()
	loaded, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := loaded.ConfigName(); got != want {
		t.Errorf("loaded image config %s, wrote %s", got, want)
	}
}
