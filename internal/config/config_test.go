package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	corev1 "k8s.io/api/core/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/credential"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const (
	brokerURL = "https://ou.example.com/api/get-target-token"
	serverURL = "https://dev-cluster-proxy.example.com"
	serverCA  = "testdata/server-ca.pem"
)

// execWith is the default command with broker flags.
func execWith(o credential.Options) Exec {
	return Exec{Command: DefaultCommand, Options: o}
}

func TestGolden(t *testing.T) {
	dev := Cluster{Name: "dev-cluster", Server: serverURL, ServerCAFile: serverCA}
	devInfo := dev
	devInfo.ClusterInfo = true
	for _, tc := range []struct {
		golden string
		render func() ([]byte, error)
	}{
		{"argocd-cluster.yaml", ArgoCDCluster{
			Cluster: dev, Exec: execWith(credential.Options{BrokerURL: brokerURL}), Namespace: "argocd",
			Labels: []string{"example.com/clustername=dev-cluster"},
		}.YAML},
		{"argocd-cluster-cluster-info.yaml", ArgoCDCluster{
			Cluster: devInfo, Exec: execWith(credential.Options{BrokerURL: brokerURL}), Namespace: "argocd",
			Labels: []string{"example.com/clustername=dev-cluster"},
		}.YAML},
		{"argocd-cluster-cluster-info-key.yaml", ArgoCDCluster{
			Cluster: devInfo, Exec: execWith(credential.Options{BrokerURL: brokerURL, ClusterConfigKey: "cluster", AllowedTargets: []string{"dev-*"}}),
			Namespace: "argocd",
		}.YAML},
		{"argocd-cluster-full.yaml", ArgoCDCluster{
			Cluster:    dev,
			Exec:       execWith(credential.Options{BrokerURL: brokerURL, Target: "dev", Timeout: 5 * time.Second, CAFile: "/etc/broker/ca.pem"}),
			SecretName: "cluster-dev", Namespace: "gitops", Project: "platform",
			Labels:     []string{"example.com/clustername=dev-cluster", "env=dev"},
			Namespaces: []string{" apps", "", "monitoring "},
		}.YAML},
		{"argocd-cluster-no-ca.yaml", ArgoCDCluster{
			Cluster: Cluster{Name: "dev-cluster", Server: serverURL}, Exec: execWith(credential.Options{BrokerURL: brokerURL}), Namespace: "argocd",
		}.YAML},
		{"kubeconfig.yaml", Kubeconfig{
			Cluster: dev,
			Exec: Exec{Command: "/usr/local/bin/brokercred", Options: credential.Options{
				BrokerURL: brokerURL, TokenFile: "/var/run/secrets/tokens/broker", NoCache: true,
			}},
		}.YAML},
		{"kubeconfig-cluster-info.yaml", Kubeconfig{
			Cluster: devInfo,
			Exec:    Exec{Command: "/usr/local/bin/brokercred", Options: credential.Options{BrokerURL: brokerURL}},
		}.YAML},
		{"helm-values.yaml", HelmValues{Exec: execWith(credential.Options{}), Version: "1.2.3"}.YAML},
		{"helm-values-broker.yaml", HelmValues{
			Exec: Exec{Command: "/tools/brokercred", Options: credential.Options{
				BrokerURL: brokerURL, CAFile: "/etc/broker/ca.pem", CacheDir: "/tmp/brokercred", RefreshMargin: 20 * time.Second,
				AllowedTargets: []string{"dev-*", "prod-east"},
			}},
			Image:       "registry.example.com/brokercred@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			CAConfigMap: "broker-ca:bundle.pem",
			Version:     "dev",
		}.YAML},
		{"helm-values-ca.yaml", HelmValues{
			Exec:        execWith(credential.Options{BrokerURL: brokerURL, CAFile: "/etc/brokercred/ca.crt"}),
			CAConfigMap: "broker-ca", Version: "1.2.3",
		}.YAML},
		{"clusterprofile-provider.json", ClusterProfileProvider{
			Exec: execWith(credential.Options{BrokerURL: brokerURL}), ProviderName: DefaultProviderName,
		}.JSON},
		{"clusterprofile-provider-custom.json", ClusterProfileProvider{
			Exec: Exec{Command: "/usr/local/bin/brokercred", Options: credential.Options{
				BrokerURL: brokerURL, TokenFile: "/var/run/secrets/tokens/broker", AllowedTargets: []string{"prod-*"},
			}},
			ProviderName: "openunison",
		}.JSON},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := tc.render()
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			checkGolden(t, tc.golden, got)
		})
	}
}

// checkGolden compares got with testdata/name, rewriting it under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./config -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s (-want +got):\n-%s\n+%s", name, want, got)
	}
}

func TestExecArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts credential.Options
		want []string
	}{
		{name: "zero", opts: credential.Options{}, want: nil},
		{name: "defaults", opts: defaults(t), want: nil},
		{name: "all changed, in declaration order", opts: credential.Options{
			BrokerURL: brokerURL, Target: "dev", TokenFile: "/tok", CAFile: "/ca.pem",
			Timeout: 3 * time.Second, RefreshMargin: 90 * time.Second, DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour,
			InsecureHTTP: true, CacheDir: "/cache", NoCache: true,
			ClusterConfigKey: "name", AllowedTargets: []string{"dev-*", "prod"},
		}, want: []string{
			"--broker-url=" + brokerURL, "--target=dev", "--token-file=/tok", "--ca-file=/ca.pem",
			"--timeout=3s", "--refresh-margin=1m30s", "--default-ttl=1h0m0s", "--max-ttl=2h0m0s",
			"--insecure-http", "--cache-dir=/cache", "--no-cache",
			"--cluster-config-key=name", "--allowed-targets=dev-*,prod",
		}},
		{name: "token exchange settings", opts: credential.Options{Protocol: "token-exchange", Settings: broker.Settings{
			OAuth: broker.OAuthClient{Audience: "aud", ClientID: "argocd", ClientSecretFile: "/secret",
				Scopes: []string{"openid", "audience:server:client_id:dev"}},
			TokenExchange: broker.TokenExchange{ConnectorID: "kubernetes", SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt"},
		}}, want: []string{
			"--protocol=token-exchange", "--client-id=argocd", "--client-secret-file=/secret",
			"--scope=openid,audience:server:client_id:dev", "--audience=aud",
			"--connector-id=kubernetes", "--subject-token-type=urn:ietf:params:oauth:token-type:jwt",
		}},
		{name: "an alias is written as the API name", opts: credential.Options{Protocol: "get"}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ExecArgs(tc.opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ExecArgs (-want +got):\n-%q\n+%q", tc.want, got)
			}
		})
	}
}

// defaults is the Options kong gives when no flag and no env var is set.
func defaults(t *testing.T) credential.Options {
	t.Helper()
	return parseTokenFlags(t, nil)
}

// parseTokenFlags parses args as the token command's flags, with every
// BROKERCRED_* variable unset.
func parseTokenFlags(t *testing.T, args []string) credential.Options {
	t.Helper()
	unsetBrokercredEnv(t)
	return parseTokenCommand(t, args)
}

// unsetBrokercredEnv unsets every BROKERCRED_* variable until the test ends.
func unsetBrokercredEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "BROKERCRED_") {
			t.Setenv(name, "") // restores it after the test
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// parseTokenCommand parses args as the token command's flags in the
// environment as it is.
func parseTokenCommand(t *testing.T, args []string) credential.Options {
	t.Helper()
	var cli struct{ credential.Options }
	parser, err := kong.New(&cli, kong.Vars(credential.KongVars()), kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatalf("kong.New: %v", err)
	}
	if _, err := parser.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return cli.Options
}

// TestExecArgsRoundTrip holds ExecArgs to the real flag parser: what it
// renders parses back into the same Options.
func TestExecArgsRoundTrip(t *testing.T) {
	want := defaults(t)
	want.BrokerURL = brokerURL
	want.Target = "prod-east"
	want.CAFile = "/etc/broker/ca.pem"
	want.Timeout = 2500 * time.Millisecond
	want.DefaultTTL = 2 * time.Minute
	want.InsecureHTTP = true
	want.NoCache = true
	want.ClusterConfigKey = "cluster"
	want.AllowedTargets = []string{"dev-*", "prod-east"}
	want.Protocol = "token-exchange"
	want.OAuth.ClientID = "argocd"
	want.TokenExchange.ConnectorID = "kubernetes"
	want.OAuth.Scopes = []string{"openid", "profile"}

	got := parseTokenFlags(t, ExecArgs(want))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed back (-want +got):\n-%+v\n+%+v", want, got)
	}
}

// insecureHTTP is the error every generator gives for --insecure-http.
const insecureHTTP = "--insecure-http is for loopback tests only, and a generated config would send the pod token over plain http; leave --insecure-http out"

// helmCA is HelmValues for a release that mount the ConfigMap key configMap
// at caFile.
func helmCA(configMap, caFile string) HelmValues {
	return HelmValues{Exec: execWith(credential.Options{CAFile: caFile}), CAConfigMap: configMap, Version: "1.2.3"}
}

// helmDirs is HelmValues of a release with the given --command and
// --cache-dir ("" for the default).
func helmDirs(command, cacheDir string) func() ([]byte, error) {
	return HelmValues{Exec: Exec{Command: command, Options: credential.Options{CacheDir: cacheDir}}, Version: "1.2.3"}.YAML
}

// helmValuesWith is HelmValues of a release with the default command and o.
func helmValuesWith(o credential.Options) func() ([]byte, error) {
	return HelmValues{Exec: execWith(o), Version: "1.2.3"}.YAML
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "not-pem.pem", "this is not a certificate\n")
	keyOnly := writeFile(t, dir, "key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	exec := execWith(credential.Options{BrokerURL: brokerURL})
	ok := Cluster{Name: "dev", Server: serverURL}
	argo := func(c Cluster, labels ...string) ArgoCDCluster {
		return ArgoCDCluster{Cluster: c, Exec: exec, Namespace: "argocd", Labels: labels}
	}
	for _, tc := range []struct {
		name    string
		render  func() ([]byte, error)
		wantErr string
	}{
		{"no name", argo(Cluster{Server: serverURL}).YAML, "no cluster name; set --name"},
		{"no name kubeconfig", Kubeconfig{Cluster: Cluster{Server: serverURL}, Exec: exec}.YAML, "no cluster name; set --name"},
		{"no server", argo(Cluster{Name: "dev"}).YAML, "no API server URL; set --server"},
		{"http server", Kubeconfig{Cluster: Cluster{Name: "dev", Server: "http://dev:6443"}, Exec: exec}.YAML, `API server URL "http://dev:6443" is not an https URL; set --server like`},
		{"server without host", argo(Cluster{Name: "dev", Server: "https://"}).YAML, "is not an https URL; set --server"},
		{"server with user info", argo(Cluster{Name: "dev", Server: "https://admin:" + fakeCredentials[1] + "@dev.example.com"}).YAML,
			"API server URL holds user info (USER:PASSWORD@), which would put a credential in the config; set --server like https://dev-cluster.example.com:6443"},
		{"server with user info kubeconfig", Kubeconfig{Cluster: Cluster{Name: "dev", Server: "http://" + fakeCredentials[1] + "@dev.example.com"}, Exec: exec}.YAML,
			"API server URL holds user info (USER:PASSWORD@)"},
		{"server with query", argo(Cluster{Name: "dev", Server: serverURL + "/?access_token=" + fakeCredentials[0]}).YAML,
			"API server URL has a query or fragment, which can hold a credential; set --server like"},
		{"server with empty query", argo(Cluster{Name: "dev", Server: serverURL + "?"}).YAML, "API server URL has a query or fragment"},
		{"server with fragment", Kubeconfig{Cluster: Cluster{Name: "dev", Server: serverURL + "#" + fakeCredentials[0]}, Exec: exec}.YAML, "API server URL has a query or fragment"},
		{"server does not parse", argo(Cluster{Name: "dev", Server: "https://dev.example.com:" + fakeCredentials[1]}).YAML, "API server URL does not parse as a URL; set --server like"},
		{"missing CA file", argo(Cluster{Name: "dev", Server: serverURL, ServerCAFile: filepath.Join(dir, "absent.pem")}).YAML, "read API server CA: open " + filepath.Join(dir, "absent.pem") + ": no such file or directory; set --server-ca-file"},
		{"CA is a directory", Kubeconfig{Cluster: Cluster{Name: "dev", Server: serverURL, ServerCAFile: dir}, Exec: exec}.YAML, "read API server CA: read " + dir + ": is a directory; set --server-ca-file"},
		{"CA not PEM", argo(Cluster{Name: "dev", Server: serverURL, ServerCAFile: notPEM}).YAML, "API server CA " + notPEM + " holds no PEM certificate; pass the CA in PEM"},
		{"CA PEM without certificate", Kubeconfig{Cluster: Cluster{Name: "dev", Server: serverURL, ServerCAFile: keyOnly}, Exec: exec}.YAML, "holds no PEM certificate"},
		{"no broker URL", ArgoCDCluster{Cluster: ok, Exec: execWith(credential.Options{}), Namespace: "argocd"}.YAML, "no broker URL; set --broker-url"},
		{"no command", Kubeconfig{Cluster: ok, Exec: Exec{Options: exec.Options}}.YAML, "no command; set --command"},
		{"label without =", argo(ok, "clustername").YAML, `label "clustername" is not KEY=VALUE; pass --label`},
		{"label without key", argo(ok, "=dev").YAML, `label "=dev" is not KEY=VALUE; pass --label`},
		{"label bad key", argo(ok, "bad key=dev").YAML, `label key "bad key" is invalid (`},
		{"label bad value", argo(ok, "env=not ok").YAML, `label value "not ok" is invalid (`},
		{"label secret-type", argo(ok, SecretTypeLabel+"=repository").YAML, "label argocd.argoproj.io/secret-type is set by brokercred to cluster; leave it out"},
		{"bad secret name", argo(Cluster{Name: "Dev_Cluster", Server: serverURL}).YAML, `"Dev_Cluster" is not a valid Secret name (`},
		{"helm relative command", HelmValues{Exec: Exec{Command: "brokercred"}, Version: "1.2.3"}.YAML, `command "brokercred" is not a clean absolute path ending in /brokercred`},
		{"helm unclean command", HelmValues{Exec: Exec{Command: "/custom-tools/../brokercred"}, Version: "1.2.3"}.YAML, `command "/custom-tools/../brokercred" is not a clean absolute path ending in /brokercred`},
		{"helm command in /usr/local/bin", helmDirs("/usr/local/bin/brokercred", ""), "--command /usr/local/bin/brokercred puts an emptyDir at /usr/local/bin, which would hide /usr/local/bin that the container needs; set --command to a directory of its own, like /custom-tools/brokercred"},
		{"helm command at the root", helmDirs("/brokercred", ""), "--command /brokercred puts an emptyDir at /, over the container's whole filesystem; set --command to a directory of its own"},
		{"helm command above a needed dir", helmDirs("/home/brokercred", ""), "--command /home/brokercred puts an emptyDir at /home, which would hide /home/argocd that the container needs"},
		{"helm command in /etc", helmDirs("/etc/brokercred", ""), "--command /etc/brokercred puts an emptyDir at /etc, which would hide /etc that the container needs"},
		{"helm command beside the token", helmDirs("/var/run/secrets/kubernetes.io/serviceaccount/brokercred", ""),
			"--command /var/run/secrets/kubernetes.io/serviceaccount/brokercred puts an emptyDir at /var/run/secrets/kubernetes.io/serviceaccount, inside /var/run, which the kubelet or the kernel fills (the ServiceAccount token is in /var/run/secrets); set --command"},
		{"helm cache dir relative", helmDirs(DefaultCommand, "cache"), `--cache-dir "cache" is not a clean absolute path; set --cache-dir to a directory of its own, like /var/cache/brokercred`},
		{"helm cache dir unclean", helmDirs(DefaultCommand, "/var/cache/brokercred/"), `--cache-dir "/var/cache/brokercred/" is not a clean absolute path`},
		{"helm cache dir root", helmDirs(DefaultCommand, "/"), "--cache-dir / puts an emptyDir at /, over the container's whole filesystem; set --cache-dir to a directory of its own, like /var/cache/brokercred"},
		{"helm cache dir token dir", helmDirs(DefaultCommand, "/var/run/secrets/kubernetes.io/serviceaccount"), "--cache-dir /var/run/secrets/kubernetes.io/serviceaccount puts an emptyDir at /var/run/secrets/kubernetes.io/serviceaccount, inside /var/run, which the kubelet or the kernel fills"},
		{"helm cache dir in /run", helmDirs(DefaultCommand, "/run/brokercred"), "--cache-dir /run/brokercred puts an emptyDir at /run/brokercred, inside /run, which the kubelet or the kernel fills"},
		{"helm cache dir /proc", helmDirs(DefaultCommand, "/proc"), "--cache-dir /proc puts an emptyDir at /proc, inside /proc"},
		{"helm cache dir a system dir", helmDirs(DefaultCommand, "/usr/local/bin"), "--cache-dir /usr/local/bin puts an emptyDir at /usr/local/bin, which would hide /usr/local/bin that the container needs"},
		{"helm cache dir above a system dir", helmDirs(DefaultCommand, "/var"), "--cache-dir /var puts an emptyDir at /var, which would hide"},
		{"helm cache dir hides the token file", helmValuesWith(credential.Options{TokenFile: "/etc/tokens/broker", CacheDir: "/etc/tokens"}),
			"--cache-dir /etc/tokens puts an emptyDir at /etc/tokens, which would hide /etc/tokens that the container needs"},
		{"helm cache dir is the tools dir", helmDirs(DefaultCommand, "/custom-tools"), "--cache-dir /custom-tools and the tools directory /custom-tools of --command are one or nest, so their emptyDirs would clash; set --cache-dir apart from it, like /var/cache/brokercred"},
		{"helm cache dir in the tools dir", helmDirs(DefaultCommand, "/custom-tools/cache"), "--cache-dir /custom-tools/cache and the tools directory /custom-tools of --command are one or nest"},
		{"helm cache dir holds the tools dir", helmDirs("/srv/brokercred/bin/brokercred", "/srv/brokercred"), "--cache-dir /srv/brokercred and the tools directory /srv/brokercred/bin of --command are one or nest"},
		{"helm dev build without image", HelmValues{Exec: execWith(credential.Options{}), Version: "dev"}.YAML,
			`this brokercred is a development build (version "dev") and has no release image; set --image`},
		{"helm no version without image", HelmValues{Exec: execWith(credential.Options{})}.YAML, `development build (version "") and has no release image; set --image`},
		{"helm version not a tag", HelmValues{Exec: execWith(credential.Options{}), Version: "1.2.3+dirty"}.YAML, `development build (version "1.2.3+dirty")`},
		{"helm with target", HelmValues{Exec: execWith(credential.Options{Target: "dev"}), Version: "1.2.3"}.YAML,
			`Helm values serve every cluster Secret, so --target "dev" would send them all to one cluster; leave --target out`},
		{"helm ca-configmap without ca-file", HelmValues{Exec: execWith(credential.Options{}), CAConfigMap: "broker-ca", Version: "1.2.3"}.YAML,
			"--ca-configmap mounts the broker's CA at --ca-file, which is not set; set --ca-file"},
		{"helm ca-configmap bad name", helmCA("Broker_CA", "/etc/brokercred/ca.crt").YAML, `--ca-configmap "Broker_CA" does not name a ConfigMap (`},
		{"helm ca-configmap empty name", helmCA(":ca.crt", "/etc/brokercred/ca.crt").YAML, `--ca-configmap ":ca.crt" does not name a ConfigMap (`},
		{"helm ca-configmap bad key", helmCA("broker-ca:ca/crt", "/etc/brokercred/ca.crt").YAML, `--ca-configmap key "ca/crt" is not a ConfigMap key (`},
		{"helm ca-file relative", helmCA("broker-ca", "ca.crt").YAML, `--ca-file "ca.crt" is not a clean absolute path, so the CA cannot be mounted there; set --ca-file`},
		{"helm ca-file unclean", helmCA("broker-ca", "/etc/brokercred/../ca.crt").YAML, `--ca-file "/etc/brokercred/../ca.crt" is not a clean absolute path`},
		{"helm ca-file in tools dir", helmCA("broker-ca", "/custom-tools/ca.crt").YAML,
			"--ca-file /custom-tools/ca.crt lies in /custom-tools, which holds brokercred's own emptyDir; set --ca-file outside it"},
		{"helm ca-file in cache dir", helmCA("broker-ca", DefaultCacheDir+"/ca.crt").YAML, "lies in " + DefaultCacheDir + ", which holds brokercred's own emptyDir"},
		{"cluster-info with target", ArgoCDCluster{
			Cluster: Cluster{Name: "dev", Server: serverURL, ClusterInfo: true}, Exec: execWith(credential.Options{BrokerURL: brokerURL, Target: "dev"}),
		}.YAML, `--cluster-info passes the cluster's name as config.clusterName, so --target "dev" would be ignored or refused; leave --target out`},
		{"cluster-info with target kubeconfig", Kubeconfig{
			Cluster: Cluster{Name: "dev", Server: serverURL, ClusterInfo: true}, Exec: execWith(credential.Options{BrokerURL: brokerURL, Target: "prod", ClusterConfigKey: "cluster"}),
		}.YAML, `--cluster-info passes the cluster's name as config.cluster, so --target "prod"`},
		{"insecure-http argocd-cluster", ArgoCDCluster{Cluster: ok, Exec: execWith(credential.Options{BrokerURL: "http://127.0.0.1:8080/token", InsecureHTTP: true}), Namespace: "argocd"}.YAML, insecureHTTP},
		{"insecure-http kubeconfig", Kubeconfig{Cluster: ok, Exec: execWith(credential.Options{BrokerURL: brokerURL, InsecureHTTP: true})}.YAML, insecureHTTP},
		{"insecure-http helm-values", HelmValues{Exec: execWith(credential.Options{InsecureHTTP: true}), Version: "1.2.3"}.YAML, insecureHTTP},
		{"insecure-http provider", ClusterProfileProvider{Exec: execWith(credential.Options{BrokerURL: brokerURL, InsecureHTTP: true}), ProviderName: "b"}.JSON, insecureHTTP},
		{"provider no name", ClusterProfileProvider{Exec: exec}.JSON, "no provider name; set --provider-name"},
		{"provider no broker URL", ClusterProfileProvider{Exec: execWith(credential.Options{}), ProviderName: "b"}.JSON, "no broker URL; set --broker-url"},
		{"provider no command", ClusterProfileProvider{Exec: Exec{Options: exec.Options}, ProviderName: "b"}.JSON, "no command; set --command"},
		{"provider with target", ClusterProfileProvider{Exec: execWith(credential.Options{BrokerURL: brokerURL, Target: "east"}), ProviderName: "b"}.JSON,
			`a provider file serves every ClusterProfile, so --target "east" would send them all to one cluster; leave --target out`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.render()
			if err == nil {
				t.Fatalf("render succeeded (%d bytes), want an error containing %q", len(out), tc.wantErr)
			}
			msg := err.Error()
			assertNoCredential(t, "error", msg)
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", msg, tc.wantErr)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans several lines: %q", msg)
			}
			if !strings.Contains(msg, "; ") {
				t.Errorf("error %q names no fix after its cause", msg)
			}
			if out != nil {
				t.Errorf("render returned output with its error")
			}
		})
	}
}

func TestReadCAWrapsCause(t *testing.T) {
	_, err := readCA(filepath.Join(t.TempDir(), "absent.pem"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("readCA error %v does not wrap os.ErrNotExist", err)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProviderFileParsesAsExecConfig reads the provider file into
// client-go's own ExecConfig, the type cluster-inventory-api's
// access.Provider holds, so a misspelt field name fails here.
func TestProviderFileParsesAsExecConfig(t *testing.T) {
	out, err := ClusterProfileProvider{Exec: execWith(credential.Options{BrokerURL: brokerURL}), ProviderName: "ou"}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Providers []struct {
			Name       string                   `json:"name"`
			ExecConfig *clientcmdapi.ExecConfig `json:"execConfig"`
		} `json:"providers"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("decode provider file: %v", err)
	}
	if len(file.Providers) != 1 || file.Providers[0].ExecConfig == nil {
		t.Fatalf("provider file holds %d providers, want 1 with an execConfig", len(file.Providers))
	}
	p := file.Providers[0]
	want := clientcmdapi.ExecConfig{
		Command: DefaultCommand, Args: []string{"--broker-url=" + brokerURL}, APIVersion: ExecAPIVersion,
		InstallHint:        p.ExecConfig.InstallHint,
		ProvideClusterInfo: true, InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
	}
	if p.Name != "ou" || !reflect.DeepEqual(*p.ExecConfig, want) {
		t.Errorf("provider %q exec config (-want +got):\n-%+v\n+%+v", p.Name, want, *p.ExecConfig)
	}
}

// TestGeneratorsAreKongCommands parses each generator as kong does in
// main.go, so a clashing or malformed flag tag fails here, and checks the
// defaults the flags give.
func TestGeneratorsAreKongCommands(t *testing.T) {
	parseTokenFlags(t, nil) // clears BROKERCRED_* for this test
	var cli struct {
		ArgocdCluster          ArgoCDCluster          `cmd:"" name:"argocd-cluster"`
		Kubeconfig             Kubeconfig             `cmd:""`
		HelmValues             HelmValues             `cmd:"" name:"helm-values"`
		ClusterprofileProvider ClusterProfileProvider `cmd:"" name:"clusterprofile-provider"`
	}
	parser, err := kong.New(&cli, kong.Vars(credential.KongVars()), kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatalf("kong.New: %v", err)
	}
	for _, tc := range []struct {
		args  []string
		check func() bool
	}{
		{[]string{"argocd-cluster", "--name=dev", "--server=" + serverURL, "--cluster-info", "--broker-url=" + brokerURL},
			func() bool { return cli.ArgocdCluster.ClusterInfo && cli.ArgocdCluster.Namespace == "argocd" }},
		{[]string{"argocd-cluster", "--from-secret=-", "--broker-url=" + brokerURL},
			func() bool { return cli.ArgocdCluster.FromSecret == "-" && cli.ArgocdCluster.Name == "" }},
		{[]string{"kubeconfig", "--name=dev", "--server=" + serverURL, "--cluster-info", "--broker-url=" + brokerURL},
			func() bool { return cli.Kubeconfig.ClusterInfo && cli.Kubeconfig.Command == DefaultCommand }},
		{[]string{"helm-values", "--broker-url=" + brokerURL},
			func() bool { return cli.HelmValues.Image == "" && cli.HelmValues.CAConfigMap == "" }},
		{[]string{"helm-values", "--ca-file=/etc/brokercred/ca.crt", "--ca-configmap=broker-ca", "--image=registry.example.com/brokercred@sha256:0123"},
			func() bool {
				h := cli.HelmValues
				return h.CAConfigMap == "broker-ca" && h.CAFile == "/etc/brokercred/ca.crt" && h.Image == "registry.example.com/brokercred@sha256:0123"
			}},
		{[]string{"clusterprofile-provider", "--broker-url=" + brokerURL}, func() bool {
			p := cli.ClusterprofileProvider
			return p.ProviderName == DefaultProviderName && p.Command == DefaultCommand && p.BrokerURL == brokerURL
		}},
	} {
		if _, err := parser.Parse(tc.args); err != nil {
			t.Errorf("parse %q: %v", tc.args, err)
			continue
		}
		if !tc.check() {
			t.Errorf("parse %q: %+v, want the flags given and the defaults", tc.args, cli)
		}
	}
}

// TestHelmValuesParseAsPodSpec reads the values into core/v1's own types,
// strictly, as the chart puts them into the controller's and the server's
// pod specs, and checks what runs brokercred mounts: its tools read-only
// (only the initContainer writes them), the cache in memory, the broker CA
// from the ConfigMap at --ca-file.
func TestHelmValuesParseAsPodSpec(t *testing.T) {
	out, err := HelmValues{
		Exec:        execWith(credential.Options{BrokerURL: brokerURL, CAFile: "/etc/brokercred/ca.crt"}),
		CAConfigMap: "broker-ca", Version: "1.2.3",
	}.YAML()
	if err != nil {
		t.Fatal(err)
	}
	type podParts struct {
		InitContainers []corev1.Container   `json:"initContainers"`
		Volumes        []corev1.Volume      `json:"volumes"`
		VolumeMounts   []corev1.VolumeMount `json:"volumeMounts"`
		Env            []corev1.EnvVar      `json:"env"`
	}
	var values struct {
		Controller podParts `json:"controller"`
		Server     podParts `json:"server"`
	}
	if err := yaml.UnmarshalStrict(out, &values); err != nil {
		t.Fatalf("values do not parse as core/v1 pod spec parts: %v", err)
	}
	for name, c := range map[string]podParts{"controller": values.Controller, "server": values.Server} {
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			mounts[m.Name] = m
		}
		if m := mounts[ToolsVolume]; m.MountPath != "/custom-tools" || !m.ReadOnly {
			t.Errorf("%s: tools mount %+v, want /custom-tools read-only", name, m)
		}
		if m := mounts[CAVolume]; m.MountPath != "/etc/brokercred/ca.crt" || m.SubPath != DefaultCAKey || !m.ReadOnly {
			t.Errorf("%s: CA mount %+v, want key %s at /etc/brokercred/ca.crt read-only", name, m, DefaultCAKey)
		}
		if len(c.InitContainers) != 1 || c.InitContainers[0].Image != ImageRepository+":1.2.3" ||
			len(c.InitContainers[0].VolumeMounts) != 1 || c.InitContainers[0].VolumeMounts[0].ReadOnly {
			t.Errorf("%s: initContainers %+v, want one running %s:1.2.3 that writes the tools volume", name, c.InitContainers, ImageRepository)
		}
		volumes := map[string]corev1.VolumeSource{}
		for _, v := range c.Volumes {
			volumes[v.Name] = v.VolumeSource
		}
		if v := volumes[CacheVolume].EmptyDir; v == nil || v.Medium != corev1.StorageMediumMemory || v.SizeLimit == nil || v.SizeLimit.String() != cacheSizeLimit {
			t.Errorf("%s: cache volume %+v, want an emptyDir in memory limited to %s", name, volumes[CacheVolume], cacheSizeLimit)
		}
		if v := volumes[CAVolume].ConfigMap; v == nil || v.Name != "broker-ca" {
			t.Errorf("%s: CA volume %+v, want ConfigMap broker-ca", name, volumes[CAVolume])
		}
	}
}

// TestHelmValuesAcceptsDirsOfTheirOwn holds the mount checks to what they
// are for: a directory of its own passes, wherever it lies.
func TestHelmValuesAcceptsDirsOfTheirOwn(t *testing.T) {
	for _, dirs := range [][2]string{
		{DefaultCommand, ""},
		{"/opt/brokercred/brokercred", "/var/cache/brokercred"},
		{"/usr/local/brokercred/brokercred", "/home/argocd/.cache/brokercred"},
		{"/tools/brokercred", "/tmp/brokercred"},
		{"/custom-tools/brokercred", "/custom-tools-cache"},
	} {
		if _, err := helmDirs(dirs[0], dirs[1])(); err != nil {
			t.Errorf("--command %s --cache-dir %q: %v", dirs[0], dirs[1], err)
		}
	}
}

// TestHelmValuesEnvParsesBack reads the values' env as the token command
// does in the controller: every setting comes back, the cache directory
// included, so each variable carries the name credential.Options reads.
func TestHelmValuesEnvParsesBack(t *testing.T) {
	unsetBrokercredEnv(t)
	want := parseTokenCommand(t, nil)
	want.BrokerURL = brokerURL
	want.CAFile = "/etc/brokercred/ca.crt"
	want.CacheDir = "/var/cache/brokercred-test"
	want.RefreshMargin = 20 * time.Second
	want.NoCache = true
	want.AllowedTargets = []string{"dev-*", "prod-east"}
	want.Protocol = "vault"
	want.Vault.LoginRole = "argocd"
	values, err := HelmValues{Exec: execWith(want), Version: "1.2.3"}.values()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range values.Controller.Env {
		t.Setenv(e.Name, e.Value)
	}
	if got := parseTokenCommand(t, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("token flags read from the values' env (-want +got):\n-%+v\n+%+v", want, got)
	}
}

func TestIsImageTag(t *testing.T) {
	for version, want := range map[string]bool{
		"1.2.3": true, "v1.2.3-rc.1": true, "_x": true, strings.Repeat("a", 128): true,
		"": false, ".1": false, "-1": false, "1.2.3+build": false, "a/b": false, strings.Repeat("a", 129): false,
	} {
		if got := isImageTag(version); got != want {
			t.Errorf("isImageTag(%q) = %v, want %v", version, got, want)
		}
	}
}
