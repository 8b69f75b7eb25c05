// Package clusterprofile holds end-to-end tests that run brokercred as a
// SIG Multicluster ClusterProfile access provider: a provider file that
// brokercred generates, read by sigs.k8s.io/cluster-inventory-api's
// pkg/access, builds the client config for each ClusterProfile. It is its
// own Go module so the main module's go.mod stays small.
package clusterprofile
