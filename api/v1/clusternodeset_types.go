package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Condition reasons of a ClusterNodeSet's Ready condition, besides
// ReasonServiceNotFound, ReasonPortNotFound and ReasonAdministrativelyDown,
// which mean the same as on a ClusterNode.
const (
	// ReasonAllNodesReady: every pod behind the Service has its
	// ClusterNode, and every one of them is Ready.
	ReasonAllNodesReady = "AllNodesReady"
	// ReasonNodesNotReady: some pod's ClusterNode is not Ready yet (its
	// pod is starting, draining or gone); the message names one.
	ReasonNodesNotReady = "NodesNotReady"
	// ReasonNodeConflict: a ClusterNode the set would create already exists
	// and is not the set's (written by hand, or by another set). The set
	// never adopts or overwrites it; delete it, or rename it, to let the
	// set take over.
	ReasonNodeConflict = "NodeConflict"
	// ReasonInvalidNodeName (shared with ClusterNode) on a set: some pod
	// can have no valid name: the template gives it one that is not a
	// valid node name (a Lua keyword, too long, starting with a digit, or
	// {ordinal} of a pod whose name has no ordinal), or its own name, which
	// its ClusterNode would take, is not a valid object name (a DNS-1123
	// subdomain: no capitals, no _). That pod gets no ClusterNode; the
	// set's other pods do.
)

// LabelClusterNodeSet is set on every ClusterNode a ClusterNodeSet manages:
// its value is the set's name (the controller ownerReference is what
// counts; the label is for `kubectl get cn -l`).
const LabelClusterNodeSet = "cluster.skycall.io/set"

// AnnotationPodGoneSince is set by the set controller on a ClusterNode whose
// pod has left the Service's EndpointSlices, with the RFC 3339 time it
// noticed, to the nanosecond; the node is removed spec.removeAfterSeconds
// later, never sooner, unless the pod comes back (a StatefulSet pod being
// replaced leaves for a few seconds).
const AnnotationPodGoneSince = "cluster.skycall.io/pod-gone-since"

// ClusterNodeSetSpec says which pods are nodes and how they are named.
type ClusterNodeSetSpec struct {
	// Service is the Service (usually a StatefulSet's headless Service)
	// whose pods are the nodes: every pod its EndpointSlices list, ready or
	// not, gets one ClusterNode.
	Service SetServiceReference `json:"service"`

	// NodeName is the template of each pod's node name: {pod} is the pod
	// name and {ordinal} the number at the end of it (a StatefulSet pod's
	// ordinal). For example game_{ordinal} names pod game-3 game_3. The
	// result must be a valid node name (see ClusterNode spec.nodeName); a
	// pod for which it is not gets no ClusterNode and the set says why.
	// +optional
	// +kubebuilder:default="{pod}"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([A-Za-z0-9_.-]|\{pod\}|\{ordinal\})+$`
	// +kubebuilder:validation:XValidation:rule="self.contains('{pod}') || self.contains('{ordinal}')",message="nodeName must contain {pod} or {ordinal}, or every pod would claim the same node name"
	// +kubebuilder:validation:XValidation:rule="self.replace('{pod}', 'p').replace('{ordinal}', '0').matches('^[A-Za-z_]')",message="nodeName must start with a letter, _ or {pod}: {ordinal} is a number, and a node name must not start with a digit, . or -"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('__')",message="nodeName must not start with __ (skynet reads such a name in its cluster config as a cluster option)"
	NodeName string `json:"nodeName,omitempty"`

	// Down marks every node of the set administratively down (skynet's
	// `node = false`): senders fail fast instead of waiting.
	// +optional
	Down bool `json:"down,omitempty"`

	// RemoveAfterSeconds is how long a pod may be missing from the
	// Service's EndpointSlices before its ClusterNode is removed. A
	// StatefulSet pod being replaced is missing for a moment (between the
	// old pod's deletion and the new pod getting an address); its node
	// stays, NotReady, so that senders keep waiting for it rather than
	// failing it as unknown. 0 removes it at once.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	RemoveAfterSeconds *int32 `json:"removeAfterSeconds,omitempty"`
}

// SetServiceReference names a Service port.
type SetServiceReference struct {
	// Name of the Service, in the set's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Port is the Service port's name or number.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : (size(self) <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",message="port must be a number between 1 and 65535 or a port name (lowercase letters, digits and '-', at most 15 characters)"
	Port intstr.IntOrString `json:"port"`
}

// ClusterNodeSetStatus counts the set's nodes.
type ClusterNodeSetStatus struct {
	// Desired is the number of pods the Service's EndpointSlices list.
	// +optional
	Desired int32 `json:"desired"`

	// Nodes is the number of ClusterNodes the set owns (it can differ from
	// Desired while pods come and go, or when some pods' nodes conflict).
	// +optional
	Nodes int32 `json:"nodes"`

	// Ready is the number of the set's ClusterNodes that are Ready.
	// +optional
	Ready int32 `json:"ready"`

	// Draining is the number of the set's ClusterNodes whose pod is
	// terminating (Ready=False, reason Draining).
	// +optional
	Draining int32 `json:"draining"`

	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold the summary Ready condition.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterNodeSet makes every pod behind a Service a cluster node: one
// ClusterNode per pod, named from a template, owned by the set.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cns,categories=skycall
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service.name`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desired`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Draining",type=integer,JSONPath=`.status.draining`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterNodeSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterNodeSetSpec   `json:"spec"`
	Status ClusterNodeSetStatus `json:"status,omitempty"`
}

// ClusterNodeSetList is a list of ClusterNodeSets.
//
// +kubebuilder:object:root=true
type ClusterNodeSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterNodeSet `json:"items"`
}
