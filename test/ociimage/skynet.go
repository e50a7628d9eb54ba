package ociimage

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// skynetParts are what a skynet node needs of its build directory: the
// binary, its C services, its Lua C libraries and its Lua code.
var skynetParts = []string{"skynet", "cservice", "luaclib", "lualib", "service"}

// SkynetFiles lists the Skynet image's files: skynetDir's build (see
// skynetParts) under /skynet, the Lua files of luaDir (lua/skycall) under
// /skynet/skycall, and the shared libraries the binary and its .so files
// load (found with ldd), copied from this machine at the paths ldd names.
func SkynetFiles(skynetDir, luaDir string) ([]File, error) {
	var files []File
	var elf []string
	for _, part := range skynetParts {
		root := filepath.Join(skynetDir, part)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(skynetDir, p)
			dst := "/skynet/" + filepath.ToSlash(rel)
			if d.IsDir() {
				files = append(files, File{Path: dst, Mode: 0o755, Dir: true})
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if part == "skynet" || strings.HasSuffix(p, ".so") {
				mode = 0o755
				elf = append(elf, p)
			}
			files = append(files, File{Path: dst, Mode: mode, Data: data})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("skynet build %s: %w (build it with hack/skynet.sh)", skynetDir, err)
		}
	}
	lua, err := filepath.Glob(filepath.Join(luaDir, "*.lua"))
	if err != nil || len(lua) == 0 {
		return nil, fmt.Errorf("no Lua files in %s: %v", luaDir, err)
	}
	for _, p := range lua {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: "/skynet/skycall/" + filepath.Base(p), Mode: 0o644, Data: data})
	}
	libs, err := sharedLibraries(elf)
	if err != nil {
		return nil, err
	}
	for _, lib := range libs {
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			return nil, fmt.Errorf("shared library %s: %w", lib, err)
		}
		data, err := os.ReadFile(real)
		if err != nil {
			return nil, fmt.Errorf("shared library %s: %w", lib, err)
		}
		files = append(files, File{Path: lib, Mode: 0o755, Data: data})
	}
	return files, nil
}

// lddPath matches the library paths of ldd's output: "libc.so.6 =>
// /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2
// (0x...)".
var lddPath = regexp.MustCompile(`(?m)(?:=>\s*|^\s*)(/\S+)\s+\(0x`)

// sharedLibraries are the libraries bins load, by the paths ldd gives.
func sharedLibraries(bins []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, b := range bins {
		raw, err := exec.Command("ldd", b).CombinedOutput()
		if err != nil && !strings.Contains(string(raw), "statically linked") {
			return nil, fmt.Errorf("ldd %s: %w: %s", b, err, raw)
		}
		if strings.Contains(string(raw), "not found") {
			return nil, fmt.Errorf("ldd %s: a library is missing on this machine:\n%s", b, raw)
		}
		for _, m := range lddPath.FindAllStringSubmatch(string(raw), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	return out, nil
}
