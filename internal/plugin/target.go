package plugin

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// DefaultClusterConfigKey is the key of spec.cluster.config that names the
// cluster: the convention of Argo CD and of ClusterProfile access providers.
const DefaultClusterConfigKey = "clusterName"

// resolveTarget settles which cluster to ask a token for: --target, else the
// cluster's name from the cluster info client-go passed. When both are given
// they must agree, and the result must match --allowed-targets, so whoever
// writes a cluster Secret or a ClusterProfile cannot point the broker at a
// cluster this installation may not reach.
func (o Options) resolveTarget(info ExecInfo) (string, error) {
	key := o.clusterConfigKey()
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
	if err := o.checkAllowed(target); err != nil {
		return "", err
	}
	return target, nil
}

func (o Options) clusterConfigKey() string {
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

// checkAllowed refuses a target that matches none of AllowedTargets. An
// empty list allows every target.
func (o Options) checkAllowed(target string) error {
	if len(o.AllowedTargets) == 0 {
		return nil
	}
	for _, pattern := range o.AllowedTargets {
		ok, err := path.Match(pattern, target)
		if err != nil {
			return fmt.Errorf("--allowed-targets pattern %q is malformed: %v; use shell globs such as dev-* or prod-east", pattern, err)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("target %q is not in --allowed-targets (%s); add a pattern for it or fix the cluster's name", target, strings.Join(o.AllowedTargets, ","))
}
