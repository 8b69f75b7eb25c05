package plugin

import (
	"encoding/json"
	"time"
)

// The ExecCredential wire format of client.authentication.k8s.io v1 and
// v1beta1, which share every field brokercred reads or writes. These few
// fields are declared here instead of importing
// k8s.io/client-go/pkg/apis/clientauthentication: that import brings
// apimachinery's runtime, schemes and serializers, whose package init costs a
// cache hit more than everything else it does (see bench/run). The tests decode
// what brokercred writes with the real types and run it under the real
// client-go exec authenticator, so the two cannot drift.

// execCredential is an ExecCredential as client-go sends it in
// KUBERNETES_EXEC_INFO and reads it from the plugin's stdout.
type execCredential struct {
	Kind       string             `json:"kind"`
	APIVersion string             `json:"apiVersion"`
	Spec       execCredentialSpec `json:"spec"`
	Status     *credentialStatus  `json:"status,omitempty"`
}

type execCredentialSpec struct {
	Cluster     *clusterInfo `json:"cluster,omitempty"`
	Interactive bool         `json:"interactive"`
}

// clusterInfo is spec.cluster: set when the exec config has
// provideClusterInfo. Only the fields brokercred uses are decoded.
type clusterInfo struct {
	Server string          `json:"server"`
	Config json.RawMessage `json:"config,omitempty"`
}

type credentialStatus struct {
	// ExpirationTimestamp is RFC 3339 in UTC to the second, as
	// metav1.Time writes it.
	ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
	Token               string `json:"token,omitempty"`
}

// wireTime formats t the way metav1.Time does.
func wireTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}
