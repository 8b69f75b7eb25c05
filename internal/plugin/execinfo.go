// Package plugin speaks client-go's exec credential protocol and nothing
// else: it reads KUBERNETES_EXEC_INFO and writes the ExecCredential, in
// client.authentication.k8s.io/v1 or v1beta1, through small wire types
// checked against client-go's own.
package plugin

import (
	"encoding/json"
	"fmt"
)

// The ExecCredential apiVersions brokercred speaks.
const (
	APIVersionV1      = "client.authentication.k8s.io/v1"
	APIVersionV1beta1 = "client.authentication.k8s.io/v1beta1"
)

// ExecInfoEnv is the variable client-go sets to describe the call.
const ExecInfoEnv = "KUBERNETES_EXEC_INFO"

// ExecInfo is what the caller told the plugin in KUBERNETES_EXEC_INFO.
type ExecInfo struct {
	// APIVersion is the ExecCredential version to answer in; v1 when the
	// variable is unset (a person running the plugin by hand).
	APIVersion string
	// Server is the remote API server's URL when the caller set
	// provideClusterInfo; empty otherwise.
	Server string
	// ClusterConfig is the raw JSON of spec.cluster.config: the cluster's
	// client.authentication.k8s.io/exec extension (Argo CD's
	// execProviderConfig.config, a ClusterProfile's extension). Nil when the
	// caller gave no cluster info or no config.
	ClusterConfig []byte
}

// ReadExecInfo parses the value of KUBERNETES_EXEC_INFO. An empty value gives
// the v1 default.
func ReadExecInfo(raw string) (ExecInfo, error) {
	if raw == "" {
		return ExecInfo{APIVersion: APIVersionV1}, nil
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal([]byte(raw), &head); err != nil {
		return ExecInfo{}, fmt.Errorf("%s is not valid JSON; it is set by client-go: unset it when running brokercred by hand", ExecInfoEnv)
	}
	if head.APIVersion != APIVersionV1 && head.APIVersion != APIVersionV1beta1 {
		return ExecInfo{}, fmt.Errorf("%s asks for apiVersion %q; set the exec config's apiVersion to %s or %s", ExecInfoEnv, head.APIVersion, APIVersionV1, APIVersionV1beta1)
	}
	var cred execCredential
	if err := json.Unmarshal([]byte(raw), &cred); err != nil {
		return ExecInfo{}, fmt.Errorf("%s does not hold a valid %s ExecCredential; check the exec config", ExecInfoEnv, head.APIVersion)
	}
	info := ExecInfo{APIVersion: head.APIVersion}
	if c := cred.Spec.Cluster; c != nil {
		info.Server = c.Server
		if string(c.Config) != "null" {
			info.ClusterConfig = c.Config
		}
	}
	return info, nil
}
