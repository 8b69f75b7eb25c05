// Package testkit holds what brokercred's end-to-end tests share across
// their Go modules: finding the real kubectl binaries on this machine and
// asking an API server for its version through client-go.
package testkit

import (
	"os/exec"
	"path/filepath"
	"sort"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// Kubectls finds the kubectl on PATH and every kubectl.1.* beside the
// resolved gcloud (the Google Cloud SDK's bin directory), each binary once,
// keyed by file name.
func Kubectls() map[string]string {
	var paths []string
	if p, err := exec.LookPath("kubectl"); err == nil {
		paths = append(paths, p)
	}
	if p, err := exec.LookPath("gcloud"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			versioned, _ := filepath.Glob(filepath.Join(filepath.Dir(real), "kubectl.1.*"))
			paths = append(paths, versioned...)
		}
	}
	found := map[string]string{}
	seen := map[string]bool{}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		found[filepath.Base(p)] = p
	}
	return found
}

// SortedNames are the keys of Kubectls' result, in order.
func SortedNames(kubectls map[string]string) []string {
	names := make([]string, 0, len(kubectls))
	for name := range kubectls {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ServerVersion asks the API server cfg points at for its version, through
// client-go's discovery client: the request goes through cfg's exec
// credential plugin like any other.
func ServerVersion(cfg *rest.Config) (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}
