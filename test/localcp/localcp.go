// Package localcp runs a local Kubernetes control plane for end-to-end tests
// and the demo: the real kube-apiserver and etcd that hack/control-plane.sh
// builds from Go modules, started on loopback through envtest, plus kubectl
// and helm wrappers bound to it. There is no kubelet and no controller
// manager: nothing runs pods, and whoever wants EndpointSlices creates them.
package localcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	skycallv1 "github.com/skycall-io/skycall/api/v1"
	"github.com/skycall-io/skycall/test/repo"
)

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	env *envtest.Environment

	// Config is an administrator's client config.
	Config *rest.Config
	// Kubeconfig is the path of an administrator's kubeconfig file.
	Kubeconfig string
	// Dir is a scratch directory removed by Stop.
	Dir string
	// Tools is the directory with kube-apiserver, etcd, kubectl and helm.
	Tools string
	// Root is the repository root.
	Root string
}

// Options say what to install on start.
type Options struct {
	// CRDDirs are directories of CRD manifests to install before Start
	// returns (relative to the repository root). Empty: none.
	CRDDirs []string
}

// Start builds the tools if missing (hack/control-plane.sh) and starts the
// control plane on loopback.
func Start(opts Options) (*ControlPlane, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	tools, err := Tools(root)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "skycall-cp-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: tools, ErrorIfCRDPathMissing: true}
	// Certificates and etcd data in directories of our own, not envtest's
	// throwaway ones, so that RestartAPIServer and RestartEtcd keep the
	// same CA, service-account keys and objects: clients keep working.
	env.ControlPlane.GetAPIServer().CertDir = filepath.Join(dir, "apiserver")
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(dir, "etcd")}
	for _, d := range []string{env.ControlPlane.APIServer.CertDir, env.ControlPlane.Etcd.DataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	for _, d := range opts.CRDDirs {
		env.CRDDirectoryPaths = append(env.CRDDirectoryPaths, filepath.Join(root, d))
	}
	if _, err := env.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start kube-apiserver and etcd from %s: %w", tools, err)
	}
	cp := &ControlPlane{env: env, Dir: dir, Tools: tools, Root: root}
	user, err := env.AddUser(envtest.User{Name: "skycall-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = cp.Stop()
		return nil, fmt.Errorf("add admin user: %w", err)
	}
	cp.Config = user.Config()
	// client-go's default of 5 requests/s would make the API server look slow.
	cp.Config.QPS, cp.Config.Burst = 1000, 2000
	kc, err := user.KubeConfig()
	if err != nil {
		_ = cp.Stop()
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kc, 0o600); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return cp, nil
}

// Stop stops the control plane and removes its scratch directory.
func (cp *ControlPlane) Stop() error {
	err := cp.env.Stop()
	return errors.Join(err, os.RemoveAll(cp.Dir))
}

// StopAPIServer stops kube-apiserver: SIGTERM, then SIGKILL when it has
// not exited after apiServerStopGrace (a graceful stop with watches open
// takes longer than tests want to wait). etcd keeps running.
func (cp *ControlPlane) StopAPIServer() error {
	as := cp.env.ControlPlane.APIServer
	as.StopTimeout = apiServerStopGrace
	if err := as.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return fmt.Errorf("stop kube-apiserver: %w", err)
	}
	return nil
}

const apiServerStopGrace = 3 * time.Second

// StartAPIServer starts kube-apiserver again on the same address with the
// same certificates, and returns once it is ready: /readyz answers ok,
// which (unlike /healthz) waits until custom resources are served again.
func (cp *ControlPlane) StartAPIServer() error {
	if err := cp.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("restart kube-apiserver: %w", err)
	}
	return cp.waitReady(time.Minute)
}

func (cp *ControlPlane) waitReady(timeout time.Duration) error {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %v: %v: %s", timeout, err, body)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StopEtcd stops etcd; its data stays for StartEtcd.
func (cp *ControlPlane) StopEtcd() error {
	if err := cp.env.ControlPlane.Etcd.Stop(); err != nil {
		return fmt.Errorf("stop etcd: %w", err)
	}
	return nil
}

// StartEtcd starts etcd again on the same client address with its data.
func (cp *ControlPlane) StartEtcd() error {
	if err := cp.env.ControlPlane.Etcd.Start(); err != nil {
		return fmt.Errorf("restart etcd: %w", err)
	}
	return nil
}

// Kubectl runs kubectl against the control plane as the administrator and
// returns its standard output; an error carries standard error.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (string, error) {
	return cp.run(ctx, filepath.Join(cp.Tools, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
}

// Helm runs helm against the control plane as the administrator.
func (cp *ControlPlane) Helm(ctx context.Context, args ...string) (string, error) {
	return cp.run(ctx, filepath.Join(cp.Tools, "helm"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
}

// KubectlStdin runs kubectl with stdin as its standard input.
func (cp *ControlPlane) KubectlStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	return cp.runStdin(ctx, stdin, filepath.Join(cp.Tools, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
}

func (cp *ControlPlane) run(ctx context.Context, bin string, args ...string) (string, error) {
	return cp.runStdin(ctx, "", bin, args...)
}

func (cp *ControlPlane) runStdin(ctx context.Context, stdin string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Dir = cp.Root
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(cp.Dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(cp.Dir, "helm", "config"),
		"HELM_DATA_HOME="+filepath.Join(cp.Dir, "helm", "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount namespace/name with a token from the TokenRequest API, with
// that namespace as its default, and returns its path. Whatever uses it has
// exactly the permissions RBAC grants that ServiceAccount.
func (cp *ControlPlane) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	token, err := cp.Kubectl(ctx, "create", "token", name, "-n", namespace, "--duration=2h")
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthorityData: cp.Config.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: strings.TrimSpace(token)}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = "sa"
	path := filepath.Join(cp.Dir, fmt.Sprintf("sa-%s-%s.kubeconfig", namespace, name))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// RepoRoot finds the repository root: the nearest directory upward from the
// working directory whose go.mod declares the skycall module.
func RepoRoot() (string, error) { return repo.Root() }

// Tools returns the directory of the control-plane binaries and tools:
// $SKYCALL_TOOLS or $KUBEBUILDER_ASSETS when set, else the last line printed
// by hack/control-plane.sh, which builds whatever is missing (minutes the
// first time on a machine, with progress on standard error).
func Tools(root string) (string, error) {
	for _, v := range []string{"SKYCALL_TOOLS", "KUBEBUILDER_ASSETS"} {
		if dir := os.Getenv(v); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err == nil {
				return dir, nil
			}
		}
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "control-plane.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/control-plane.sh failed: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// Client is a controller-runtime client of the control plane as its
// administrator, knowing Kubernetes' types and skycall's.
func (cp *ControlPlane) Client() (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := skycallv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cp.Config, client.Options{Scheme: scheme})
}
