package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/credential"
)

// fakeCredentials are the credentials planted in testdata/from-secret-*,
// one a line in testdata/fake-credentials.txt (the root package's CLI test
// reads it too): bearerToken (also in the last-applied annotation),
// username, password, certData and keyData (base64 of these),
// awsAuthConfig.roleARN, the old execProviderConfig's args and env,
// proxyUrl's password, a stray data key.
var fakeCredentials = readFakeCredentials()

func readFakeCredentials() []string {
	data, err := os.ReadFile(filepath.Join("testdata", "fake-credentials.txt"))
	if err != nil {
		panic(err)
	}
	return strings.Fields(string(data))
}

// base64Run finds what may be base64 in the test inputs.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{12,}={0,2}`)

// decodedText is text with every base64 run in it decoded and appended, so
// a credential stored in data, or in certData inside data, shows in clear.
func decodedText(text string) string {
	all := text
	for range 2 { // data holds config, config holds certData
		for _, run := range base64Run.FindAllString(all, -1) {
			if b, err := base64.StdEncoding.DecodeString(run); err == nil {
				all += "\n" + string(b)
			}
		}
	}
	return all
}

// assertNoCredential fails when text holds any fake credential, whole, as
// an 8-character piece, or base64 encoded.
func assertNoCredential(t *testing.T, what, text string) {
	t.Helper()
	for i, cred := range fakeCredentials {
		for _, form := range []string{cred, base64.StdEncoding.EncodeToString([]byte(cred))} {
			if leak := brokertest.Leak(text, form); leak != "" {
				t.Errorf("%s holds %s of fake credential %d", what, leak, i)
			}
		}
	}
}

func TestFromSecretInputsHoldTheCredentials(t *testing.T) {
	for _, name := range []string{"from-secret-list.yaml", "from-secret.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		all := decodedText(string(data))
		for i, cred := range fakeCredentials {
			if name == "from-secret.json" && strings.HasPrefix(cred, "FAKEextra") {
				continue // only the List has the stray key
			}
			if !strings.Contains(all, cred) {
				t.Errorf("%s lacks fake credential %d, so its test proves nothing about it", name, i)
			}
		}
	}
}

func TestFromSecret(t *testing.T) {
	list := filepath.Join("testdata", "from-secret-list.yaml")
	single := filepath.Join("testdata", "from-secret.json")
	singleJSON, err := os.ReadFile(single)
	if err != nil {
		t.Fatal(err)
	}
	exec := execWith(credential.Options{BrokerURL: brokerURL})
	from := func(file string) ArgoCDCluster {
		return ArgoCDCluster{Exec: exec, Namespace: "argocd", FromSecret: file}
	}
	withInfo := from(single)
	withInfo.ClusterInfo = true
	noNamespace := from("-")
	noNamespace.Namespace = "gitops"
	for _, tc := range []struct {
		name        string
		a           ArgoCDCluster
		stdin       string
		golden      string   // expected stdout; empty when none
		wantReports []string // lines on the report writer
		wantErr     string
	}{
		{name: "kubectl List", a: from(list), golden: "argocd-cluster-from-secret-list.yaml", wantReports: []string{
			annotationsLeftOut("argocd/dev-cluster", "example.com/owner", "kapp.k14s.io/original"),
			"brokercred: left out argocd/broken-config: config is not a JSON object; fix the Secret's config key, or write the Secret anew with brokercred config argocd-cluster --name NAME --server URL",
			"brokercred: left out argocd/no-server: has no server key; add the remote API server's https URL to the Secret as server",
			"brokercred: left out argocd/userinfo-server: server holds user info (USER:PASSWORD@), which would put a credential in the config; fix the Secret's server key to the remote API server's https URL",
			"brokercred: left out argocd/query-server: server has a query or fragment, which can hold a credential; fix the Secret's server key to the remote API server's https URL",
			"brokercred: left out argocd/bad-base64: data.password is not base64; give the Secret as kubectl get prints it, or the value in clear under stringData",
			"brokercred: left out argocd/repo-creds: is not an Argo CD cluster Secret (no label argocd.argoproj.io/secret-type: cluster); select Secrets with -l argocd.argoproj.io/secret-type=cluster",
			`brokercred: left out argocd/broker-ca: is not a Secret (kind "ConfigMap"); give only Secrets, from kubectl get secret`,
		}},
		{name: "one Secret as JSON", a: from(single), golden: "argocd-cluster-from-secret.yaml"},
		{name: "one Secret from stdin", a: from("-"), stdin: string(singleJSON), golden: "argocd-cluster-from-secret.yaml"},
		{name: "cluster-info", a: withInfo, golden: "argocd-cluster-from-secret-cluster-info.yaml"},
		{name: "two documents make a List", a: from("-"), stdin: string(singleJSON) + "---\n" + secretYAML("prod-east", "https://prod-east.example.com"),
			golden: "argocd-cluster-from-secret-documents.yaml"},
		{name: "no namespace takes --namespace", a: noNamespace, stdin: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: east\n  labels:\n    argocd.argoproj.io/secret-type: cluster\nstringData:\n  name: east\n  server: https://east.example.com\n",
			golden: "argocd-cluster-from-secret-namespace.yaml"},
		{name: "one Secret left out fails", a: from("-"), stdin: secretYAML("dev", ""),
			wantErr: "argocd/dev: has no server key; add the remote API server's https URL to the Secret as server"},
		{name: "one Secret without name key", a: from("-"), stdin: secretYAML("", "https://dev.example.com"),
			wantErr: "argocd/dev: has no name key; add the cluster's name to the Secret as name"},
		{name: "tlsClientConfig does not parse", a: from("-"), stdin: secretWithConfig(`{"tlsClientConfig": {"caData": "not base64!", "keyData": "FAKEkey-Tj6rD9gLu4Yh1Za"}}`),
			wantErr: "argocd/dev: config's tlsClientConfig does not parse (caData base64, serverName a string, insecure true or false); fix it in the Secret"},
		{name: "config not an object", a: from("-"), stdin: secretWithConfig(`["FAKEpw-Zq8vT3xLm9Rk2Wd"]`),
			wantErr: "argocd/dev: config is not a JSON object; fix the Secret's config key"},
		{name: "field of the wrong type", a: from("-"), stdin: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dev\n  namespace: argocd\nstringData: [FAKEpw-Zq8vT3xLm9Rk2Wd]\n",
			wantErr: "argocd/dev: does not parse as a Secret (stringData is a JSON array); give the Secrets as kubectl get prints them"},
		{name: "no metadata.name", a: from("-"), stdin: "apiVersion: v1\nkind: Secret\nmetadata:\n  labels:\n    argocd.argoproj.io/secret-type: cluster\n",
			wantErr: "item 1: has no metadata.name; give the Secrets as kubectl get prints them"},
		{name: "none of a List converted", a: from("-"), stdin: "apiVersion: v1\nkind: List\nitems:\n- " + indent(secretYAML("a", "")) + "- " + indent(secretYAML("b", "http://b.example.com")),
			wantReports: []string{
				"brokercred: left out argocd/a: has no server key; add the remote API server's https URL to the Secret as server",
				`brokercred: left out argocd/b: server "http://b.example.com" is not an https URL; fix the Secret's server key to the remote API server's https URL`,
			},
			wantErr: "none of the 2 Secrets in --from-secret - was converted; fix the causes reported above"},
		{name: "empty List", a: from("-"), stdin: "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
			wantErr: "--from-secret - holds no Secret; give the output of kubectl get secret -n argocd -l argocd.argoproj.io/secret-type=cluster -o yaml"},
		{name: "empty input", a: from("-"), wantErr: "--from-secret - holds no Secret"},
		{name: "not YAML", a: from("-"), stdin: "kind: Secret\nstringData:\n  password: FAKEpw-Zq8vT3xLm9Rk2Wd\n  config: {\"bearerToken\": [FAKEuser-Hn5cY1bQe\n",
			wantErr: "--from-secret - does not parse as YAML or JSON (document 1, line 4); give kubectl get secret -o yaml or -o json output"},
		{name: "bad document separator", a: from("-"), stdin: secretYAML("dev", serverURL) + "--- FAKEpw-Zq8vT3xLm9Rk2Wd\n",
			wantErr: "--from-secret - does not parse as YAML or JSON (document 1); give kubectl get secret"},
		{name: "missing file", a: from(filepath.Join("testdata", "absent.yaml")),
			wantErr: "read --from-secret testdata/absent.yaml: open testdata/absent.yaml: no such file or directory; give a file holding kubectl get secret -o yaml output, or - for stdin"},
		{name: "with --target", a: withOptions(from(list), credential.Options{BrokerURL: brokerURL, Target: "dev"}),
			wantErr: `--from-secret converts every Secret it reads, so --target "dev" would send them all to one cluster; leave --target out and let each Secret's name key (or --cluster-info) name its target`},
		{name: "with --insecure-http", a: withOptions(from(list), credential.Options{BrokerURL: "http://127.0.0.1/t", InsecureHTTP: true}), wantErr: insecureHTTP},
		{name: "without --broker-url", a: withOptions(from(list), credential.Options{}), wantErr: "no broker URL; set --broker-url"},
		{name: "with --name", a: withCluster(from(list), Cluster{Name: "dev"}),
			wantErr: "--from-secret keeps each Secret's own name key, so --name would be ignored; leave --name out and edit the Secrets after review"},
		{name: "with --server", a: withCluster(from(list), Cluster{Server: serverURL}), wantErr: "--from-secret keeps each Secret's own server key, so --server would be ignored"},
		{name: "with --server-ca-file", a: withCluster(from(list), Cluster{ServerCAFile: serverCA}), wantErr: "--from-secret keeps each Secret's own tlsClientConfig.caData, so --server-ca-file would be ignored"},
		{name: "with --label", a: func() ArgoCDCluster { a := from(list); a.Labels = []string{"env=dev"}; return a }(),
			wantErr: "--from-secret keeps each Secret's own labels, so --label would be ignored"},
		{name: "with --secret-name", a: func() ArgoCDCluster { a := from(list); a.SecretName = "x"; return a }(),
			wantErr: "--from-secret keeps each Secret's own metadata.name, so --secret-name would be ignored"},
		{name: "with --project", a: func() ArgoCDCluster { a := from(list); a.Project = "p"; return a }(),
			wantErr: "--from-secret keeps each Secret's own project key, so --project would be ignored"},
		{name: "with --namespaces", a: func() ArgoCDCluster { a := from(list); a.Namespaces = []string{"apps"}; return a }(),
			wantErr: "--from-secret keeps each Secret's own namespaces key, so --namespaces would be ignored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var report bytes.Buffer
			out, err := tc.a.Render(strings.NewReader(tc.stdin), &report)
			assertNoCredential(t, "stdout", string(out))
			assertNoCredential(t, "report", report.String())
			if err != nil {
				assertNoCredential(t, "error", err.Error())
			}
			if gotReports := lines(report.String()); !reflect.DeepEqual(gotReports, tc.wantReports) {
				t.Errorf("reports (-want +got):\n-%s\n+%s", strings.Join(tc.wantReports, "\n"), strings.Join(gotReports, "\n"))
			}
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Render succeeded (%d bytes), want an error containing %q", len(out), tc.wantErr)
				}
				if msg := err.Error(); !strings.Contains(msg, tc.wantErr) || strings.Contains(msg, "\n") || !strings.Contains(msg, "; ") {
					t.Errorf("error = %q, want one line containing %q and a fix after \"; \"", msg, tc.wantErr)
				}
				if out != nil {
					t.Errorf("Render returned output with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkGolden(t, tc.golden, out)
		})
	}
}

// TestFromSecretKeepsAndDrops checks field by field what the conversion of
// the kubectl List keeps and what it leaves behind.
func TestFromSecretKeepsAndDrops(t *testing.T) {
	out, err := ArgoCDCluster{
		Exec: execWith(credential.Options{BrokerURL: brokerURL}), Namespace: "argocd",
		FromSecret: filepath.Join("testdata", "from-secret-list.yaml"),
	}.Render(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Items      []map[string]any `json:"items"`
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.APIVersion != "v1" || got.Kind != "List" || len(got.Items) != 2 {
		t.Fatalf("output is %s %s with %d items, want a v1 List of the 2 convertible Secrets", got.APIVersion, got.Kind, len(got.Items))
	}
	dev := got.Items[0]
	if keys := slices.Sorted(maps.Keys(dev)); !reflect.DeepEqual(keys, []string{"apiVersion", "kind", "metadata", "stringData", "type"}) {
		t.Errorf("Secret fields %v, want apiVersion, kind, metadata, stringData, type (no data)", keys)
	}
	if dev["type"] != "Opaque" {
		t.Errorf("type = %v, want Opaque kept", dev["type"])
	}
	wantMeta := map[string]any{
		"name": "dev-cluster", "namespace": "argocd",
		"labels": map[string]any{SecretTypeLabel: "cluster", "example.com/clustername": "dev-cluster"},
		"annotations": map[string]any{
			"argocd.argoproj.io/tracking-id": "clusters:/Secret:argocd/dev-cluster", "managed-by": "argocd.argoproj.io",
			"meta.helm.sh/release-name": "clusters", "meta.helm.sh/release-namespace": "argocd",
		},
	}
	if !reflect.DeepEqual(dev["metadata"], wantMeta) {
		t.Errorf("metadata (-want +got):\n-%v\n+%v\n(resourceVersion, uid, creationTimestamp, managedFields and every annotation but Argo CD's and Helm's must go)", wantMeta, dev["metadata"])
	}
	data, _ := dev["stringData"].(map[string]any)
	config, _ := data["config"].(string)
	delete(data, "config")
	wantData := map[string]any{
		"name": "dev-cluster", "server": "https://dev-cluster-proxy.example.com", "project": "platform",
		"namespaces": "apps,monitoring", "clusterResources": "true", "shard": "1",
	}
	if !reflect.DeepEqual(data, wantData) {
		t.Errorf("stringData besides config (-want +got):\n-%v\n+%v", wantData, data)
	}
	var cfg map[string]map[string]any
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if keys := slices.Sorted(maps.Keys(cfg)); !reflect.DeepEqual(keys, []string{"execProviderConfig", "tlsClientConfig"}) {
		t.Errorf("config keys %v, want only execProviderConfig and tlsClientConfig", keys)
	}
	ca, err := os.ReadFile(serverCA)
	if err != nil {
		t.Fatal(err)
	}
	wantTLS := map[string]any{"insecure": false, "serverName": "dev-cluster.internal", "caData": base64.StdEncoding.EncodeToString(ca)}
	if !reflect.DeepEqual(cfg["tlsClientConfig"], wantTLS) {
		t.Errorf("tlsClientConfig (-want +got):\n-%v\n+%v", wantTLS, cfg["tlsClientConfig"])
	}
	epc := cfg["execProviderConfig"]
	wantArgs := []any{"--broker-url=" + brokerURL, "--target=dev-cluster"}
	if epc["command"] != DefaultCommand || !reflect.DeepEqual(epc["args"], wantArgs) || epc["env"] != nil {
		t.Errorf("execProviderConfig = %v, want brokercred's with args %v and no env", epc, wantArgs)
	}
}

// annotationsLeftOut is the report line for the annotations keys of the
// Secret ref left out of its conversion.
func annotationsLeftOut(ref string, keys ...string) string {
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = `"` + k + `"`
	}
	return "brokercred: " + ref + ": left out annotations " + strings.Join(quoted, ", ") +
		", as only Argo CD's (argocd.argoproj.io/*, managed-by) and Helm's (meta.helm.sh/release-*) are sure to hold no old credential; add back after review those you need"
}

// secretYAML is a cluster Secret in argocd with the name key name (none
// when empty) and server (none when empty).
func secretYAML(name, server string) string {
	s := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + orDefault(name, "dev") + "\n  namespace: argocd\n  labels:\n    argocd.argoproj.io/secret-type: cluster\nstringData:\n"
	if name != "" {
		s += "  name: " + name + "\n"
	}
	if server != "" {
		s += "  server: " + server + "\n"
	}
	return s + "  config: '{\"bearerToken\": \"FAKEsig-k2Jq9VxW4mTz7LpR\"}'\n"
}

// secretWithConfig is the cluster Secret dev with config as its config key.
func secretWithConfig(config string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: dev\n  namespace: argocd\n  labels:\n    argocd.argoproj.io/secret-type: cluster\nstringData:\n  name: dev\n  server: " + serverURL + "\n  config: '" + config + "'\n"
}

// indent indents every line but the first by two spaces, for a List item.
func indent(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

func withOptions(a ArgoCDCluster, o credential.Options) ArgoCDCluster {
	a.Options = o
	return a
}

func withCluster(a ArgoCDCluster, c Cluster) ArgoCDCluster {
	a.Cluster = c
	return a
}

// lines splits text into its lines; nil when empty.
func lines(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}
