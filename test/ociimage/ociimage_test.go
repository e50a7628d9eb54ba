package ociimage_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skycall-io/skycall/test/ociimage"
)

// dockerfileFinal reads USER, ENTRYPOINT and EXPOSE of the Dockerfile's last
// stage, the image Docker users run.
func dockerfileFinal(t *testing.T) (user string, entrypoint []string, ports []string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		word, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(word) {
		case "FROM": // a new stage: only the last one counts
			user, entrypoint, ports = "", nil, nil
		case "USER":
			user = strings.TrimSpace(rest)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &entrypoint); err != nil {
				t.Fatalf("Dockerfile ENTRYPOINT %q is not the JSON (exec) form: %v", rest, err)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				ports = append(ports, p)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(ports)
	return user, entrypoint, ports
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

func TestManagerImageAgreesWithDockerfile(t *testing.T) {
	base := baseImage(t)
	img, err := ociimage.Build(ociimage.Manager, base, []byte("#!binary"))
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

	user, entrypoint, dockerPorts := dockerfileFinal(t)
	if cf.Config.User != user {
		t.Errorf("user: image %q, Dockerfile %q", cf.Config.User, user)
	}
	if !reflect.DeepEqual(cf.Config.Entrypoint, entrypoint) {
		t.Errorf("entrypoint: image %q, Dockerfile %q", cf.Config.Entrypoint, entrypoint)
	}
	if !reflect.DeepEqual(ports, dockerPorts) {
		t.Errorf("exposed ports: image %v, Dockerfile %v", ports, dockerPorts)
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
