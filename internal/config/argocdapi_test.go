package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/brokercred/brokercred/internal/broker"
)

const (
	argoURL   = "https://argocd.example.com"
	saIssuer  = "https://kubernetes.default.svc.cluster.local"
	ciImage   = "registry.example.com/ci/argocd:3.3"
	issuerCA  = serverCA // any PEM certificate
	tokenPath = argoCDTokenDir + "/token"
)

// argoCDAPI parses args as `brokercred config argocd-api` does, so the
// flags' defaults apply, with --url, --issuer and --image set unless args
// set them.
func argoCDAPI(t *testing.T, args ...string) ArgoCDAPI {
	t.Helper()
	var cli struct {
		ArgocdAPI ArgoCDAPI `cmd:"" name:"argocd-api"`
	}
	parser, err := kong.New(&cli, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatalf("kong.New: %v", err)
	}
	base := []string{"argocd-api", "--url=" + argoURL, "--issuer=" + saIssuer, "--image=" + ciImage}
	if _, err := parser.Parse(append(base, args...)); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return cli.ArgocdAPI
}

func TestArgoCDAPIGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"argocd-api.yaml", []string{"--service-account=ci:deployer"}},
		{"argocd-api-full.yaml", []string{
			"--url=https://cd.example.com/argocd/", "--namespace=gitops",
			"--issuer-ca-file=" + issuerCA, "--connector-id=kubernetes", "--id-token-expiry=1h",
			"--service-account=ci:deployer", "--service-account=release:promoter",
			"--project=payments", "--app=prod-*", "--action=get", "--action=sync", "--action=override",
			"--policy-name=ci", "--command=/usr/local/bin/brokercred", "--token-audience=https://cd.example.com",
			"--ca-file=/etc/argocd-ca/ca.crt", "--ca-configmap=argocd-ca:tls.crt",
			"--", "argocd", "app", "sync", "payments-prod", "--prune",
		}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := argoCDAPI(t, tc.args...).YAML()
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			checkGolden(t, tc.golden, got)
		})
	}
}

// TestArgoCDAPIFlags parses the command as kong does in main.go and checks
// the defaults the flags give.
func TestArgoCDAPIFlags(t *testing.T) {
	a := argoCDAPI(t, "--service-account=ci:deployer", "--service-account=ci:other", "--", "argocd", "app", "get", "x")
	want := ArgoCDAPI{
		URL: argoURL, Namespace: "argocd", Issuer: saIssuer, ConnectorID: "k8s-sa",
		ServiceAccounts: []string{"ci:deployer", "ci:other"}, Project: "default", App: "*",
		Actions: []string{"get", "sync"}, PolicyName: "brokercred",
		Image: ciImage, Command: "brokercred", TokenAudience: "argocd",
		JobCommand: []string{"--", "argocd", "app", "get", "x"},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("parsed (-want +got):\n-%+v\n+%+v", want, a)
	}
	if got := a.run(); !reflect.DeepEqual(got, []string{"argocd", "app", "get", "x"}) {
		t.Errorf("run() = %q, want the command without kong's --", got)
	}
	if got := argoCDAPI(t).run(); !reflect.DeepEqual(got, defaultRun) {
		t.Errorf("run() without a command = %q, want %q", got, defaultRun)
	}
}

// documents splits the output into its YAML documents.
func documents(out []byte) [][]byte {
	return bytes.Split(out, []byte("---\n"))
}

// TestArgoCDAPIParsesAsCoreV1 reads each document into core/v1's own types,
// strictly, so a misspelt field fails here, and checks what the CI pod
// holds: only the projected token for Argo CD (no automounted one), the
// brokercred run line that exchanges it at Argo CD's Dex, and Argo CD's
// address for the argocd CLI.
func TestArgoCDAPIParsesAsCoreV1(t *testing.T) {
	out, err := argoCDAPI(t, "--service-account=ci:deployer", "--service-account=release:promoter",
		"--ca-file=/etc/argocd-ca/ca.crt", "--ca-configmap=argocd-ca").YAML()
	if err != nil {
		t.Fatal(err)
	}
	docs := documents(out)
	if len(docs) != 4 {
		t.Fatalf("%d documents, want argocd-cm, argocd-rbac-cm and two pods", len(docs))
	}
	var cms [2]corev1.ConfigMap
	for i := range cms {
		if err := yaml.UnmarshalStrict(docs[i], &cms[i]); err != nil {
			t.Fatalf("document %d is not a ConfigMap: %v", i, err)
		}
	}
	if cms[0].Name != "argocd-cm" || cms[0].Data["url"] != argoURL || cms[0].Data["dex.config"] == "" {
		t.Errorf("first ConfigMap %s has keys %v, want argocd-cm with url %s and dex.config", cms[0].Name, keys(cms[0].Data), argoURL)
	}
	if cms[1].Name != "argocd-rbac-cm" || !reflect.DeepEqual(keys(cms[1].Data), []string{"policy.brokercred.csv"}) {
		t.Errorf("second ConfigMap %s has keys %v, want argocd-rbac-cm with policy.brokercred.csv only (never policy.default or policy.csv)", cms[1].Name, keys(cms[1].Data))
	}
	for i, sa := range []string{"ci:deployer", "release:promoter"} {
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict(docs[2+i], &pod); err != nil {
			t.Fatalf("document %d is not a Pod: %v", 2+i, err)
		}
		ns, name, _ := strings.Cut(sa, ":")
		if pod.Namespace != ns || pod.Spec.ServiceAccountName != name {
			t.Errorf("pod %d runs as %s:%s, want %s", i, pod.Namespace, pod.Spec.ServiceAccountName, sa)
		}
		if m := pod.Spec.AutomountServiceAccountToken; m == nil || *m {
			t.Errorf("pod %d automountServiceAccountToken = %v, want false", i, m)
		}
		checkCIPod(t, pod)
	}
}

func checkCIPod(t *testing.T, pod corev1.Pod) {
	t.Helper()
	volumes := map[string]corev1.VolumeSource{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v.VolumeSource
	}
	p := volumes[ArgoCDTokenVolume].Projected
	if p == nil || len(p.Sources) != 1 || p.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("volume %s = %+v, want a projected ServiceAccount token", ArgoCDTokenVolume, volumes[ArgoCDTokenVolume])
	}
	if st := p.Sources[0].ServiceAccountToken; st.Audience != "argocd" || st.Path != "token" || st.ExpirationSeconds == nil || *st.ExpirationSeconds != 600 {
		t.Errorf("projected token %+v, want audience argocd at token for 600s", st)
	}
	if cm := volumes[CAVolume].ConfigMap; cm == nil || cm.Name != "argocd-ca" {
		t.Errorf("CA volume %+v, want ConfigMap argocd-ca", volumes[CAVolume])
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts[ArgoCDTokenVolume]; m.MountPath != argoCDTokenDir || !m.ReadOnly {
		t.Errorf("token mount %+v, want %s read-only", m, argoCDTokenDir)
	}
	if m := mounts[CAVolume]; m.MountPath != "/etc/argocd-ca/ca.crt" || m.SubPath != "ca.crt" || !m.ReadOnly {
		t.Errorf("CA mount %+v, want key ca.crt at /etc/argocd-ca/ca.crt read-only", m)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env[ArgoCDServerEnv] != "argocd.example.com" || env[argoCDOptsEnv] != "--server-crt /etc/argocd-ca/ca.crt" {
		t.Errorf("env %v, want %s=argocd.example.com and %s=--server-crt /etc/argocd-ca/ca.crt", env, ArgoCDServerEnv, argoCDOptsEnv)
	}
	if _, ok := env[ArgoCDTokenEnv]; ok {
		t.Errorf("pod env sets %s itself; brokercred run must", ArgoCDTokenEnv)
	}
	if len(c.Args) < 3 || c.Args[0] != "run" {
		t.Fatalf("args %q, want brokercred run FLAGS -- COMMAND", c.Args)
	}
	dash := indexOf(c.Args, "--")
	if dash < 0 || !reflect.DeepEqual(c.Args[dash+1:], defaultRun) {
		t.Fatalf("args %q, want the flags, then -- %q", c.Args, defaultRun)
	}
	got := parseTokenFlags(t, c.Args[1:dash])
	want := defaults(t)
	want.Protocol = "token-exchange"
	want.BrokerURL = argoURL + DexTokenPath
	want.Target = ArgoCDCLIClient
	want.TokenFile = tokenPath
	want.CAFile = "/etc/argocd-ca/ca.crt"
	want.CacheDir = DefaultCacheDir
	want.OAuth = broker.OAuthClient{ClientID: ArgoCDCLIClient, Scopes: []string{"openid", FederatedIDScope}}
	want.TokenExchange.ConnectorID = "k8s-sa"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("brokercred run flags parse as (-want +got):\n-%+v\n+%+v", want, got)
	}
	if got.TokenExchange.SubjectTokenType != broker.TokenTypeIDToken {
		t.Errorf("subject token type %q, want %q: Dex verifies only an id_token against the issuer", got.TokenExchange.SubjectTokenType, broker.TokenTypeIDToken)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestArgoCDAPIDexConfig reads dex.config back and checks the connector
// settings the exchange depends on, and the CA embedded as Dex reads it.
func TestArgoCDAPIDexConfig(t *testing.T) {
	out, err := argoCDAPI(t, "--service-account=ci:deployer", "--issuer-ca-file="+issuerCA, "--id-token-expiry=15m").YAML()
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(documents(out)[0], &cm); err != nil {
		t.Fatal(err)
	}
	var dex struct {
		Connectors []struct {
			Type, ID string
			Config   map[string]any
		}
		Expiry map[string]string
	}
	if err := yaml.Unmarshal([]byte(cm.Data["dex.config"]), &dex); err != nil {
		t.Fatalf("dex.config does not parse: %v", err)
	}
	if len(dex.Connectors) != 1 || dex.Connectors[0].Type != "oidc" || dex.Connectors[0].ID != "k8s-sa" {
		t.Fatalf("connectors %+v, want one oidc connector k8s-sa", dex.Connectors)
	}
	cfg := dex.Connectors[0].Config
	for k, want := range map[string]any{
		"issuer": saIssuer, "scopes": []any{"openid"}, "userNameKey": "sub",
		"insecureSkipEmailVerified": true, "getUserInfo": false,
	} {
		if !reflect.DeepEqual(cfg[k], want) {
			t.Errorf("connector config %s = %v, want %v", k, cfg[k], want)
		}
	}
	ca, err := os.ReadFile(issuerCA)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg["rootCAs"], []any{base64.StdEncoding.EncodeToString(ca)}) {
		t.Errorf("rootCAs = %v, want the base64 of %s", cfg["rootCAs"], issuerCA)
	}
	if dex.Expiry["idTokens"] != "15m0s" {
		t.Errorf("expiry = %v, want idTokens 15m0s", dex.Expiry)
	}
}

func TestArgoCDAPIPolicy(t *testing.T) {
	out, err := argoCDAPI(t, "--service-account=ci:deployer", "--service-account=ops:bot", "--project=web", "--app=apps/site-*", "--action=get").YAML()
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(documents(out)[1], &cm); err != nil {
		t.Fatal(err)
	}
	want := "p, system:serviceaccount:ci:deployer, applications, get, web/apps/site-*, allow\n" +
		"p, system:serviceaccount:ci:deployer, projects, get, web, allow\n" +
		"p, system:serviceaccount:ops:bot, applications, get, web/apps/site-*, allow\n" +
		"p, system:serviceaccount:ops:bot, projects, get, web, allow\n"
	if got := cm.Data["policy.brokercred.csv"]; got != want {
		t.Errorf("policy (-want +got):\n-%s\n+%s", want, got)
	}
}

func TestArgoCDAPIErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "not-pem.pem", "this is not a certificate\n")
	sa := "--service-account=ci:deployer"
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"policy default", []string{sa, "--policy-default=role:readonly"}, `refusing --policy-default "role:readonly": Dex does not check the pod token's audience (dexidp/dex#4397)`},
		{"no url", []string{sa, "--url="}, "no Argo CD URL; set --url"},
		{"http url", []string{sa, "--url=http://argocd.example.com"}, `--url "http://argocd.example.com" is not an https URL of a host; set --url`},
		{"url with query", []string{sa, "--url=https://argocd.example.com/?x=1"}, "is not an https URL of a host"},
		{"url with user", []string{sa, "--url=https://admin@argocd.example.com"}, "is not an https URL of a host"},
		{"bad namespace", []string{sa, "--namespace=Argo_CD"}, `--namespace "Argo_CD" is not a namespace name (`},
		{"bad connector id", []string{sa, "--connector-id=k8s sa"}, `--connector-id "k8s sa" is not a connector ID`},
		{"no issuer", []string{sa, "--issuer="}, "no ServiceAccount issuer; set --issuer"},
		{"http issuer", []string{sa, "--issuer=http://kubernetes.default.svc"}, `ServiceAccount issuer "http://kubernetes.default.svc" is not an https URL; set --issuer`},
		{"missing issuer CA", []string{sa, "--issuer-ca-file=" + filepath.Join(dir, "absent.pem")}, "read issuer CA: open " + filepath.Join(dir, "absent.pem") + ": no such file or directory; set --issuer-ca-file"},
		{"issuer CA not PEM", []string{sa, "--issuer-ca-file=" + notPEM}, "issuer CA " + notPEM + " holds no PEM certificate; set --issuer-ca-file"},
		{"negative expiry", []string{sa, "--id-token-expiry=-1h"}, "--id-token-expiry -1h0m0s is negative; set a duration"},
		{"no service account", nil, "no ServiceAccount; set --service-account NS:NAME"},
		{"service account without namespace", []string{"--service-account=deployer"}, `--service-account "deployer" is not NS:NAME; pass`},
		{"service account bad namespace", []string{"--service-account=CI:deployer"}, `--service-account "CI:deployer": namespace "CI" is invalid (`},
		{"service account bad name", []string{"--service-account=ci:deploy:er"}, `--service-account "ci:deploy:er": name "deploy:er" is invalid (`},
		{"service account twice", []string{sa, sa}, "--service-account ci:deployer is given twice; list each ServiceAccount once"},
		{"bad policy name", []string{sa, "--policy-name=a/b"}, `--policy-name "a/b" does not make a ConfigMap key policy.NAME.csv; set --policy-name`},
		{"empty policy name", []string{sa, "--policy-name="}, `--policy-name "" does not make a ConfigMap key`},
		{"project with comma", []string{sa, "--project=a,b"}, `--project "a,b" is not one RBAC field (no comma, quote, space or #); set --project`},
		{"project with slash", []string{sa, "--project=a/b"}, `--project "a/b" holds a /; set --project to the project name`},
		{"app with space", []string{sa, "--app=my app"}, `--app "my app" is not one RBAC field`},
		{"app with comment", []string{sa, "--app=#x"}, `--app "#x" is not one RBAC field`},
		{"no action", []string{sa, "--action="}, "no application action; set --action get"},
		{"action with quote", []string{sa, `--action="get"`}, `--action "\"get\"" is not one RBAC field`},
		{"no image", []string{sa, "--image="}, "no CI image; set --image"},
		{"no command", []string{sa, "--command="}, "no command; set --command"},
		{"no token audience", []string{sa, "--token-audience="}, "no token audience; set --token-audience"},
		{"relative ca-file", []string{sa, "--ca-file=ca.crt"}, `--ca-file "ca.crt" is not a clean absolute path without spaces or quotes; set --ca-file`},
		{"ca-file with space", []string{sa, "--ca-file=/etc/argo ca/ca.crt"}, `--ca-file "/etc/argo ca/ca.crt" is not a clean absolute path`},
		{"ca-file in token dir", []string{sa, "--ca-file=" + argoCDTokenDir + "/ca.crt"}, "lies in " + argoCDTokenDir + ", which holds the projected token; set --ca-file outside it"},
		{"ca-file in cache dir", []string{sa, "--ca-file=" + DefaultCacheDir + "/ca.crt"}, "lies in " + DefaultCacheDir + ", which holds brokercred's own emptyDir"},
		{"ca-configmap without ca-file", []string{sa, "--ca-configmap=argocd-ca"}, "--ca-configmap mounts the broker's CA at --ca-file, which is not set; set --ca-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := argoCDAPI(t, tc.args...).YAML()
			if err == nil {
				t.Fatalf("render succeeded (%d bytes), want an error containing %q", len(out), tc.wantErr)
			}
			msg := err.Error()
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

func TestIsConnectorID(t *testing.T) {
	for id, want := range map[string]bool{
		"k8s-sa": true, "Kubernetes.prod_1": true, "9": true,
		"": false, "-x": false, ".x": false, "_x": false, "k8s sa": false, "k8s/sa": false, "k8s-ß": false,
	} {
		if got := isConnectorID(id); got != want {
			t.Errorf("isConnectorID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestIsPolicyField(t *testing.T) {
	for v, want := range map[string]bool{
		"default": true, "guestbook-*": true, "apps/site-*": true, "action/*": true,
		"": false, "a,b": false, `"get"`: false, "#x": false, "my app": false, "a\tb": false, "a\u00a0b": false,
	} {
		if got := isPolicyField(v); got != want {
			t.Errorf("isPolicyField(%q) = %v, want %v", v, got, want)
		}
	}
}
