package config

import (
	"encoding/json"
	"errors"
	"fmt"
)

// DefaultProviderName is the access provider name ClusterProfiles list in
// status.accessProviders to be reached through brokercred.
const DefaultProviderName = "brokercred"

// ClusterProfileProvider is a ClusterProfile access provider file, the JSON
// that sigs.k8s.io/cluster-inventory-api's access.NewFromFile reads (the
// --clusterprofile-provider-file of multicluster controllers). Its one
// provider runs brokercred with provideClusterInfo and no --target, so each
// ClusterProfile names its own target in its cluster's
// client.authentication.k8s.io/exec extension, {"clusterName": NAME}.
type ClusterProfileProvider struct {
	Exec
	ProviderName string `name:"provider-name" default:"brokercred" placeholder:"NAME" help:"Provider name, matched against the ClusterProfiles' status.accessProviders[].name."`
}

// providerFile mirrors cluster-inventory-api's access.Config.
type providerFile struct {
	Providers []provider `json:"providers"`
}

// provider mirrors access.Provider.
type provider struct {
	Name       string       `json:"name"`
	ExecConfig providerExec `json:"execConfig"`
}

// providerExec mirrors the JSON of client-go's clientcmd/api ExecConfig,
// which access.Provider embeds.
type providerExec struct {
	APIVersion         string   `json:"apiVersion"`
	Command            string   `json:"command"`
	Args               []string `json:"args,omitempty"`
	InstallHint        string   `json:"installHint,omitempty"`
	ProvideClusterInfo bool     `json:"provideClusterInfo"`
	InteractiveMode    string   `json:"interactiveMode"`
}

// providerInstallHint tells a multicluster controller's operator how to get
// the binary.
const providerInstallHint = "copy it into the controller's container (an initContainer running brokercred install DIR), or set --command to where it is"

// JSON renders the provider file. It is JSON, not YAML, because
// access.NewFromFile parses JSON only.
func (p ClusterProfileProvider) JSON() ([]byte, error) {
	f, err := p.file()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render provider file: %w", err)
	}
	return append(out, '\n'), nil
}

func (p ClusterProfileProvider) file() (providerFile, error) {
	if p.ProviderName == "" {
		return providerFile{}, errors.New("no provider name; set --provider-name to the name your ClusterProfiles list in status.accessProviders")
	}
	if err := checkExec(p.Exec); err != nil {
		return providerFile{}, err
	}
	if err := checkNoTarget(p.Options, "a provider file serves every ClusterProfile",
		fmt.Sprintf("give each ClusterProfile the %s extension {%q: NAME}", ExecExtension, p.ClusterNameKey())); err != nil {
		return providerFile{}, err
	}
	return providerFile{Providers: []provider{{
		Name: p.ProviderName,
		ExecConfig: providerExec{
			APIVersion:         ExecAPIVersion,
			Command:            p.Command,
			Args:               ExecArgs(p.Options),
			InstallHint:        installHint(p.Command, providerInstallHint),
			ProvideClusterInfo: true,
			InteractiveMode:    "Never",
		},
	}}}, nil
}
