package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Condition types and reasons of a ClusterNode.
const (
	// ConditionReady summarises whether senders can reach the node now.
	ConditionReady = "Ready"

	// ReasonResolved: the node has an address senders should use.
	ReasonResolved = "Resolved"
	// ReasonNoReadyEndpoints: the Service exists but has no ready endpoint
	// (for the selected pod, if spec.service.pod is set).
	ReasonNoReadyEndpoints = "NoReadyEndpoints"
	// ReasonDraining: no endpoint is ready and at least one is terminating
	// (its EndpointSlice condition terminating is true: the pod is being
	// deleted, usually to be replaced; preStop and SIGTERM follow). Ready is
	// False, so nothing new should be sent there; unlike NoReadyEndpoints it
	// tells senders that the connection they hold goes to a pod that is
	// leaving, so that they stop writing to it, let the calls already
	// written finish, and hold new messages for the replacement.
	// status.endpoints lists the terminating endpoints (terminating: true).
	ReasonDraining = "Draining"
	// ReasonServiceNotFound: spec.service.name names no Service in the namespace.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonPortNotFound: the Service has no port with that name or number.
	ReasonPortNotFound = "PortNotFound"
	// ReasonAdministrativelyDown: spec.down is true (skynet's `node = false`).
	ReasonAdministrativelyDown = "AdministrativelyDown"
	// ReasonNameConflict: another ClusterNode in the namespace claims the same node name.
	ReasonNameConflict = "NameConflict"
	// ReasonInvalidNodeName: the node name is reserved (a Lua keyword, _ENV,
	// _G, or starts with "__"); only objects stored before the CRD rejected
	// such names can have one.
	ReasonInvalidNodeName = "InvalidNodeName"
	// ReasonInvalidSpec: the spec breaks a rule the CRD enforces today (an
	// object stored before the rule existed).
	ReasonInvalidSpec = "InvalidSpec"
)

// ClusterNodeSpec says where a node lives: exactly one of address or service.
//
// +kubebuilder:validation:XValidation:rule="has(self.address) != has(self.service)",message="exactly one of spec.address or spec.service must be set"
type ClusterNodeSpec struct {
	// NodeName is the node name senders use. It defaults to metadata.name;
	// set it when the skynet name (for example game_1) is not a valid
	// Kubernetes object name. Reserved, because skynet's cluster config
	// would read them as something else: Lua keywords, _ENV, _G and names
	// starting with __ (cluster options such as __nowaiting). These are
	// clusterconfig.CheckNodeName's rules; a test holds the two to one corpus.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.-]*$`
	// +kubebuilder:validation:XValidation:rule="!(self in ['and','break','do','else','elseif','end','false','for','function','global','goto','if','in','local','nil','not','or','repeat','return','then','true','until','while','_ENV','_G']) && !self.startsWith('__')",message="nodeName must not be a Lua keyword, _ENV or _G, nor start with __ (skynet reads such a name in its cluster config as something else than a node)"
	NodeName string `json:"nodeName,omitempty"`

	// Address is a fixed host:port: an IPv4 address, a DNS name, or
	// [ipv6]:port. Use it for a node outside the cluster or with a stable address.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.matches('^(\\\\[[0-9A-Fa-f:.]+\\\\]|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*):[0-9]{1,5}$')",message="address must be host:port, with host an IPv4 address, a DNS name or [IPv6]"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^.*:[0-9]{1,5}$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)",message="address port must be between 1 and 65535"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+(\\\\.[0-9]+){3}:') || isIP(self.substring(0, self.lastIndexOf(':')))",message="address has an invalid IPv4 address"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('[') || (self.lastIndexOf(']') > 1 && isIP(self.substring(1, self.lastIndexOf(']'))) && ip(self.substring(1, self.lastIndexOf(']'))).family() == 6)",message="address has an invalid IPv6 address"
	// +kubebuilder:validation:XValidation:rule="self.lastIndexOf(':') <= 253",message="address host must be at most 253 characters"
	Address string `json:"address,omitempty"`

	// Service points at a Service in the same namespace whose ready
	// endpoints the operator follows.
	// +optional
	Service *ServiceReference `json:"service,omitempty"`

	// Down marks the node administratively down, as skynet's `node = false`:
	// senders fail fast instead of waiting for it.
	// +optional
	Down bool `json:"down,omitempty"`
}

// ServiceReference names a Service port, and optionally one pod behind it.
type ServiceReference struct {
	// Name of the Service, in the ClusterNode's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Port is the Service port's name or number.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : (size(self) <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",message="port must be a number between 1 and 65535 or a port name (lowercase letters, digits and '-', at most 15 characters)"
	Port intstr.IntOrString `json:"port"`

	// Pod, if set, picks the endpoint whose target pod has this name (one
	// StatefulSet replica behind a headless Service).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Pod string `json:"pod,omitempty"`
}

// Endpoint is one address the operator resolved for a node: a ready one,
// or one whose pod is terminating.
type Endpoint struct {
	// Address is host:port.
	Address string `json:"address"`
	// PodName is the name of the pod behind the address, where known.
	// +optional
	PodName string `json:"podName,omitempty"`
	// PodUID is the UID of that pod, where known: the node's incarnation
	// at this address. A pod replaced under the same name (a StatefulSet
	// pod) has a new UID, and possibly the old pod's IP.
	// +optional
	PodUID types.UID `json:"podUID,omitempty"`
	// Terminating is true for an endpoint whose pod is terminating (the
	// EndpointSlice's terminating condition); it is never status.address.
	// +optional
	Terminating bool `json:"terminating,omitempty"`
}

// ClusterNodeStatus is what the operator resolved.
type ClusterNodeStatus struct {
	// NodeName is the node name in effect (spec.nodeName or metadata.name).
	// +optional
	NodeName string `json:"nodeName,omitempty"`

	// Address is the one host:port senders should use; empty when not Ready.
	// +optional
	Address string `json:"address,omitempty"`

	// Endpoints are the ready endpoints found and those whose pod is
	// terminating (marked terminating), sorted by address.
	// +optional
	// +listType=atomic
	Endpoints []Endpoint `json:"endpoints,omitempty"`

	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold the summary Ready condition.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterNode records where a named cluster node lives.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cn,categories=skycall
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.address`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="has(self.spec.nodeName) || (size(self.metadata.name) <= 63 && self.metadata.name.matches('^[A-Za-z_][A-Za-z0-9_.-]*$') && !(self.metadata.name in ['and','break','do','else','elseif','end','false','for','function','global','goto','if','in','local','nil','not','or','repeat','return','then','true','until','while']))",message="metadata.name is not a valid node name (a Lua keyword, longer than 63 characters, or not starting with a letter): set spec.nodeName to the name senders use"
type ClusterNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterNodeSpec   `json:"spec"`
	Status ClusterNodeStatus `json:"status,omitempty"`
}

// EffectiveNodeName is the node name senders use for this object.
func (n *ClusterNode) EffectiveNodeName() string {
	if n.Spec.NodeName != "" {
		return n.Spec.NodeName
	}
	return n.Name
}

// ClusterNodeList is a list of ClusterNodes.
//
// +kubebuilder:object:root=true
type ClusterNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterNode `json:"items"`
}
