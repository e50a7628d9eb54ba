package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The workloads the cluster test and `make demo-cluster` run, one definition
// for both: Go nodes (skycall-demo node, a server.Server) as a StatefulSet
// of two behind a headless Service, a ClusterNode per pod, and a long-lived
// sender pod (skycall-demo sender) using kube.NewClient() with the
// namespace's default ServiceAccount.
const (
	// Namespace is where the nodes and the sender run; the chart binds the
	// sender role there (sender.namespaces).
	Namespace = "game"
	// NodePort is the nodes' cluster port.
	NodePort = 2528
	// SenderPort is the sender pod's HTTP control port.
	SenderPort = "8080"
	// SkynetClientLabel, as a YAML map entry, is the label that
	// config/samples/skynet's NetworkPolicy admits to the skynet nodes'
	// cluster port.
	SkynetClientLabel = `skycall.io/skynet-client: "true"`
)

// NodesManifest is the headless Service "node" and StatefulSet "node"
// (pods node-0 and node-1, each serving as the node named like its pod).
var NodesManifest = GoNodesManifest(Namespace, "node", "", 2, "")

// GoNodesManifest is a headless Service and a StatefulSet, both named app,
// of replicas Go nodes (skycall-demo node: a server.Server with @echo) in
// namespace ns, each serving as nodeName, or as the node named like its pod
// when nodeName is empty. label, a YAML map entry such as
// SkynetClientLabel, is added to the pods' labels when not empty.
func GoNodesManifest(ns, app, nodeName string, replicas int, label string) string {
	if nodeName == "" {
		nodeName = "$(POD_NAME)"
	}
	podLabels := "app: " + app
	if label != "" {
		podLabels += ", " + label
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  clusterIP: None
  selector: {app: %[2]s}
  ports: [{name: cluster, port: 2528, targetPort: cluster}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: %[4]d
  serviceName: %[2]s
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {%[6]s}}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 5
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: node
        image: %[5]s
        imagePullPolicy: Never
        args: ["node", "--name=%[3]s", "--listen=:2528"]
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{name: cluster, containerPort: 2528}]
        readinessProbe: {tcpSocket: {port: cluster}, periodSeconds: 1}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: tmp, mountPath: /tmp}]
      # skycall-demo links envtest (for its loopback demo), whose init
      # creates a directory in /tmp; the root filesystem is read-only.
      volumes: [{name: tmp, emptyDir: {}}]
`, ns, app, nodeName, replicas, DemoImage+":"+ImageTag, podLabels)
}

// ClusterNodeManifest is a ClusterNode named after its first argument that
// follows the endpoint of the pod named by the second in Service node.
const ClusterNodeManifest = `apiVersion: cluster.skycall.io/v1
kind: ClusterNode
metadata: {name: %[1]s, namespace: game}
spec:
  service: {name: node, port: cluster, pod: %[2]s}
`

// SenderManifest is the sender pod in Namespace.
var SenderManifest = SenderManifestIn(Namespace)

// SenderManifestIn is the sender pod in namespace ns: no environment, no
// kubeconfig; it finds the API server as any pod does (the kubernetes
// Service), with the namespace's default ServiceAccount.
func SenderManifestIn(ns string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: sender, namespace: ` + ns + `, labels: {app: sender}}
spec:
  serviceAccountName: default
  enableServiceLinks: false
  terminationGracePeriodSeconds: 5
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  containers:
  - name: sender
    image: ` + DemoImage + `:` + ImageTag + `
    imagePullPolicy: Never
    args: ["sender", "--listen=:8080"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
`
}

// RollingNodesManifest is the rolling-restart workload in namespace %[1]s:
// a headless Service "game", a StatefulSet "game" of 3 Go nodes set up as
// docs/rolling-restarts.md says (incarnation from the pod UID, a 5 s
// preStop wait, termination grace beyond it), recording the pushes they
// handle in the host directory %[2]s, and the ClusterNodeSet "game" that
// makes each pod the node named like it (game-0, game-1, game-2).
const RollingNodesManifest = `apiVersion: v1
kind: Service
metadata: {name: game, namespace: %[1]s}
spec:
  clusterIP: None
  selector: {app: game}
  ports: [{name: cluster, port: 2528, targetPort: cluster}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: game, namespace: %[1]s}
spec:
  replicas: 3
  serviceName: game
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: game}}
  template:
    metadata: {labels: {app: game}}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 15
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: node
        image: ` + DemoImage + `:` + ImageTag + `
        imagePullPolicy: Never
        args: ["node", "--name=$(POD_NAME)", "--listen=:2528", "--record=/record"]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: SKYCALL_INCARNATION, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        ports: [{name: cluster, containerPort: 2528}]
        readinessProbe: {tcpSocket: {port: cluster}, periodSeconds: 1}
        lifecycle: {preStop: {sleep: {seconds: 5}}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: tmp, mountPath: /tmp}, {name: record, mountPath: /record}]
      volumes:
      - {name: tmp, emptyDir: {}}
      - {name: record, hostPath: {path: "%[2]s", type: Directory}}
---
apiVersion: cluster.skycall.io/v1
kind: ClusterNodeSet
metadata: {name: game, namespace: %[1]s}
spec:
  service: {name: game, port: cluster}
  nodeName: "{pod}"
`

// SenderBatch asks the sender at addr (host:port; a pod's is
// IP:SenderPort) to issue count messages to nodes
// (comma-separated), numbered from first, alternating send and call; the
// channel yields what the sender prints as it happens and closes at the end,
// whose last line is "all replies received" on success.
func SenderBatch(ctx context.Context, addr, nodes string, first, count int) (<-chan string, error) {
	url := fmt.Sprintf("http://%s/send?to=%s&first=%d&count=%d", addr, nodes, first, count)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the sender at %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("the sender at %s answered %s", addr, resp.Status)
	}
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch, nil
}

// SenderState is the sender's connection state for node ("ready",
// "resolving", ...), or the error reaching it; addr as for SenderBatch.
func SenderState(ctx context.Context, addr, node string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/state?node=%s", addr, node), nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Scan()
	return strings.TrimSpace(sc.Text())
}

// SenderGet asks the sender at addr (as for SenderBatch) for path and
// returns its whole answer; an answer other than 200 is an error.
func SenderGet(ctx context.Context, addr, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking the sender at %s for %s: %w", addr, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading the sender's answer to %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the sender at %s answered %s to %s: %s", addr, resp.Status, path, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}
