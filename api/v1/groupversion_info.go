// Package v1 contains the cluster.skycall.io/v1 API: the ClusterNode kind,
// which records where a named skynet-style cluster node lives, and the
// ClusterNodeSet kind, which makes every pod behind a Service a ClusterNode.
//
// +kubebuilder:object:generate=true
// +groupName=cluster.skycall.io
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The scheme is built with apimachinery alone (not controller-runtime's
// scheme.Builder, deprecated for this reason): pods import this package
// through the sender library, and an API package should cost them nothing
// more than apimachinery.
var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "cluster.skycall.io", Version: "v1"}

	// SchemeBuilder registers the types of this API with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ClusterNode{}, &ClusterNodeList{}, &ClusterNodeSet{}, &ClusterNodeSetList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
