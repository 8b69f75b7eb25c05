package credential

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/brokercred/brokercred/internal/plugin"
)

// DefaultClusterConfigKey is the key of spec.cluster.config that names the
// cluster: the convention of Argo CD and of ClusterProfile access providers.
const DefaultClusterConfigKey = "clusterName"

// maxTargetLen is the longest target accepted: a DNS subdomain's length,
// which covers Kubernetes object names and cloud cluster names.
const maxTargetLen = 253

// resolveTarget settles which cluster to ask a token for: --target, else the
// cluster's name from the cluster info client-go passed. When both are given
// they must agree; the name must be plain text, and it must match
// --allowed-targets (and the server pinned there, if any), so whoever writes
// a cluster Secret or a ClusterProfile cannot point the broker at a cluster
// this installation may not reach.
func (o Options) resolveTarget(info plugin.ExecInfo) (string, error) {
	key := o.ClusterNameKey()
	fromCluster, err := clusterName(info.ClusterConfig, key)
	if err != nil {
		return "", err
	}
	target := o.Target
	switch {
	case target != "" && fromCluster != "" && target != fromCluster:
		return "", fmt.Errorf("--target %q and the cluster's config.%s %q disagree; remove --target from the exec config or fix the cluster's %s", target, key, fromCluster, key)
	case target == "":
		target = fromCluster
	}
	if target == "" {
		return "", fmt.Errorf("no target cluster; set --target or BROKERCRED_TARGET, or set provideClusterInfo: true with config {%q: NAME} in the exec config (Argo CD v3.5.0 or later)", key)
	}
	if err := checkTargetName(target); err != nil {
		return "", err
	}
	if err := o.checkAllowed(target, info.Server); err != nil {
		return "", err
	}
	return target, nil
}

// checkTargetName accepts what Kubernetes object names and Argo CD or cloud
// cluster names use: letters, digits and . _ - : / @ +, starting with a
// letter or digit. Anything else (spaces, newlines, escapes, NUL) could
// forge lines in errors and listings.
func checkTargetName(target string) error {
	ok := len(target) <= maxTargetLen && isAlnum(target[0])
	for i := 0; ok && i < len(target); i++ {
		ok = isAlnum(target[i]) || strings.IndexByte("._-:/@+", target[i]) >= 0
	}
	if !ok {
		return fmt.Errorf("target %q is not a cluster name; use at most %d letters, digits and . _ - : / @ +, starting with a letter or digit", target, maxTargetLen)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ClusterNameKey is the key of the cluster's exec config that names the
// target: ClusterConfigKey, or DefaultClusterConfigKey when it is empty.
func (o Options) ClusterNameKey() string {
	if o.ClusterConfigKey == "" {
		return DefaultClusterConfigKey
	}
	return o.ClusterConfigKey
}

// clusterName reads config[key] as a string. Absent config or key gives "".
func clusterName(config []byte, key string) (string, error) {
	if len(config) == 0 {
		return "", nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(config, &fields); err != nil {
		return "", fmt.Errorf("the cluster's exec config (spec.cluster.config) is not a JSON object; set it to {%q: NAME}", key)
	}
	raw, ok := fields[key]
	if !ok {
		return "", nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil || name == "" {
		return "", fmt.Errorf("the cluster's config.%s is not a non-empty string; set it to the cluster's name", key)
	}
	return name, nil
}

// checkAllowed refuses a target that matches none of AllowedTargets, each a
// shell glob, optionally pinned to an API server as GLOB=SERVER: a pinned
// pattern matches only when client-go's cluster info names that server. An
// empty list allows every target on any server.
func (o Options) checkAllowed(target, server string) error {
	if len(o.AllowedTargets) == 0 {
		return nil
	}
	pinnedElsewhere := ""
	for _, entry := range o.AllowedTargets {
		pattern, pin, pinned := strings.Cut(entry, "=")
		ok, err := path.Match(pattern, target)
		if err != nil {
			return fmt.Errorf("--allowed-targets pattern %q is malformed: %v; use shell globs such as dev-* or prod-east, optionally =https://server", pattern, err)
		}
		switch {
		case !ok:
		case !pinned || sameServer(pin, server):
			return nil
		default:
			pinnedElsewhere = pin
		}
	}
	if pinnedElsewhere != "" {
		if server == "" {
			return fmt.Errorf("target %q is pinned to %q by --allowed-targets, but the caller did not say which server it calls; set provideClusterInfo: true in the exec config", target, pinnedElsewhere)
		}
		return fmt.Errorf("target %q is pinned to %q by --allowed-targets, not %q; fix the cluster's server or the pin", target, pinnedElsewhere, server)
	}
	return fmt.Errorf("target %q is not in --allowed-targets (%s); add a pattern for it or fix the cluster's name", target, strings.Join(o.AllowedTargets, ","))
}

// sameServer compares API server URLs, ignoring a trailing slash.
func sameServer(a, b string) bool {
	return b != "" && strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}
