package ociimage_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skycall-io/skycall/test/ociimage"
	"github.com/skycall-io/skycall/test/skynetpeer"
)

// TestSkynetImageHoldsSkynetSkycallAndTheirLibraries: the skynet image has
// what a node needs to start from /skynet with skynet's usual relative
// config, skycall's Lua service, and the C libraries skynet loads (the base
// has none).
func TestSkynetImageHoldsSkynetSkycallAndTheirLibraries(t *testing.T) {
	base := baseImage(t)
	dir := skynetpeer.Require(t)
	files, err := ociimage.SkynetFiles(dir, filepath.Join("..", "..", "lua", "skycall"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := ociimage.BuildFiles(ociimage.Skynet, base, files, "/skynet")
	if err != nil {
		t.Fatal(err)
	}
	paths, err := ociimage.Files(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"skynet/skynet", "skynet/cservice/snlua.so", "skynet/cservice/gate.so", "skynet/luaclib/skynet.so",
		"skynet/lualib/skynet.lua", "skynet/lualib/loader.lua", "skynet/service/clusterd.lua", "skynet/service/bootstrap.lua",
		"skynet/skycall/skycall.lua", "skynet/skycall/skycall_confirm.lua",
	} {
		if !slices.Contains(paths, want) {
			t.Errorf("the skynet image lacks %s", want)
		}
	}
	libc := slices.ContainsFunc(paths, func(p string) bool { return strings.HasSuffix(p, "/libc.so.6") })
	loader := slices.ContainsFunc(paths, func(p string) bool { return strings.Contains(p, "ld-linux") })
	if !libc || !loader {
		t.Errorf("the skynet image lacks libc (%t) or the dynamic loader (%t): %v", libc, loader, paths)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.WorkingDir != "/skynet" || cf.Config.User != ociimage.NonRoot {
		t.Errorf("working dir %q, user %q; want /skynet and %s", cf.Config.WorkingDir, cf.Config.User, ociimage.NonRoot)
	}
}
