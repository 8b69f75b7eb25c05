package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/brokercred/brokercred/internal/broker"
	"github.com/brokercred/brokercred/internal/credential"
)

const (
	// ArgoCDCLIClient is the public Dex client Argo CD registers for its
	// CLI (common.ArgoCDCLIClientAppID). It needs no secret, and Argo CD
	// accepts tokens with it as their audience.
	ArgoCDCLIClient = "argo-cd-cli"
	// ArgoCDTokenEnv is the variable the argocd CLI reads its token from.
	ArgoCDTokenEnv = "ARGOCD_AUTH_TOKEN"
	// ArgoCDServerEnv is the variable the argocd CLI reads Argo CD's
	// address from, host[:port] without a scheme.
	ArgoCDServerEnv = "ARGOCD_SERVER"
	// argoCDOptsEnv holds flags the argocd CLI reads as if given.
	argoCDOptsEnv = "ARGOCD_OPTS"
	// DexTokenPath is where Argo CD serves its bundled Dex's token
	// endpoint, below its url (common.DexAPIEndpoint + "/token").
	DexTokenPath = "/api/dex/token"
	// FederatedIDScope makes Dex write federated_claims into its token;
	// Argo CD then takes federated_claims.user_id, the ServiceAccount's
	// system:serviceaccount:NS:NAME, as the RBAC subject.
	FederatedIDScope = "federated:id"
	// ArgoCDTokenVolume is the CI pod's projected token volume.
	ArgoCDTokenVolume = "argocd-token"
	// argoCDTokenDir is where ArgoCDTokenVolume is mounted.
	argoCDTokenDir = "/var/run/secrets/argocd"
	// argoCDTokenExpiry is the projected token's lifetime, the least the
	// kubelet allows; it rotates the token at 80% of it.
	argoCDTokenExpiry = 600
	// partOfArgoCD is the label Argo CD reads its ConfigMaps and Secrets by.
	partOfArgoCD = "argocd"
	// connectorName is what Dex's login page shows for the connector.
	connectorName = "Kubernetes ServiceAccounts (token exchange, not for login)"
)

// ArgoCDAPI is what an Argo CD admin applies so that pods call Argo CD's
// own API as their ServiceAccount, with no static token: an oidc connector
// in Argo CD's bundled Dex that trusts the cluster's ServiceAccount issuer,
// RBAC grants for named ServiceAccounts, and a CI pod that exchanges its
// projected token at Dex (brokercred run) and runs the argocd CLI with the
// result. It never sets policy.default: Dex does not check the subject
// token's audience, so RBAC on the subject is the only guard.
type ArgoCDAPI struct {
	URL          string `name:"url" placeholder:"URL" help:"Argo CD's external URL, as argocd-cm's url: Dex's issuer is URL/api/dex and pods exchange their token at URL/api/dex/token."`
	Namespace    string `name:"namespace" default:"argocd" placeholder:"NS" help:"Namespace Argo CD runs in (default: ${default})."`
	Issuer       string `name:"issuer" placeholder:"URL" help:"The cluster's ServiceAccount token issuer, as its discovery says (kubectl get --raw /.well-known/openid-configuration)."`
	IssuerCAFile string `name:"issuer-ca-file" placeholder:"FILE" help:"PEM CA bundle Dex trusts for the issuer's discovery and keys, embedded in dex.config (default: Dex's system roots)."`
	ConnectorID  string `name:"connector-id" default:"k8s-sa" placeholder:"ID" help:"ID of the Dex connector that verifies pod tokens (default: ${default})."`
	// IDTokenExpiry is Dex's expiry.idTokens; zero leaves it out, so Dex's
	// default of 24h applies.
	IDTokenExpiry time.Duration `name:"id-token-expiry" placeholder:"DURATION" help:"Dex's expiry.idTokens: the life of every Dex token, human SSO sessions included (default: unset, Dex's 24h)."`

	ServiceAccounts []string `name:"service-account" sep:"none" placeholder:"NS:NAME" help:"ServiceAccount granted access to Argo CD's API, system:serviceaccount:NS:NAME in RBAC (repeatable)."`
	Project         string   `name:"project" default:"default" placeholder:"PROJECT" help:"Argo CD project whose applications the ServiceAccounts may act on (a name or glob); projects get is granted on it (default: ${default})."`
	App             string   `name:"app" default:"*" placeholder:"PATTERN" help:"Applications of --project granted: a name or glob, NAMESPACE/NAME for applications in other namespaces (default: ${default})."`
	Actions         []string `name:"action" default:"get,sync" placeholder:"ACTION" help:"Application actions granted (repeatable): get, sync, override, update, action/*, ... (default: ${default})."`
	PolicyName      string   `name:"policy-name" default:"brokercred" placeholder:"NAME" help:"The grants go in argocd-rbac-cm key policy.NAME.csv, which Argo CD adds to policy.csv; one NAME per CI job keeps them apart (default: ${default})."`
	// PolicyDefault exists to be refused with the reason: a default role
	// would be given to every pod of the issuer.
	PolicyDefault string `name:"policy-default" placeholder:"ROLE" help:"Refused: Dex does not check the pod token's audience (dexidp/dex#4397), so policy.default would reach every pod of the cluster."`

	Image         string `name:"image" placeholder:"IMAGE" help:"Image of the CI pod, holding the argocd CLI and brokercred at --command."`
	Command       string `name:"command" default:"brokercred" placeholder:"PATH" help:"brokercred in the CI image; a name is looked up on PATH (default: ${default})."`
	TokenAudience string `name:"token-audience" default:"argocd" placeholder:"AUD" help:"Audience of the CI pod's projected token: Dex ignores it, but a token the API server does not accept is good for nothing else (default: ${default})."`
	CAFile        string `name:"ca-file" placeholder:"FILE" help:"CA bundle the CI pod trusts for --url, a path in the pod (brokercred --ca-file, argocd --server-crt) (default: system roots)."`
	CAConfigMap   string `name:"ca-configmap" placeholder:"NAME[:KEY]" help:"ConfigMap key in the ServiceAccount's namespace mounted at --ca-file (KEY default: ca.crt)."`
	// JobCommand is the command the CI pod runs with the token; empty
	// means argocd app list.
	JobCommand []string `arg:"" optional:"" passthrough:"" help:"The CI pod's command, after -- (default: argocd app list)."`
}

// defaultRun is what the CI pod runs when ArgoCDAPI.JobCommand is empty: the least
// the grants allow, listing the applications they reach.
var defaultRun = []string{"argocd", "app", "list"}

// policyDefaultRefused is the one line --policy-default gets.
const policyDefaultRefused = "refusing --policy-default %q: Dex does not check the pod token's audience (dexidp/dex#4397), so any pod of the issuer, with its default token, would get that role; grant named ServiceAccounts with --service-account, and keep policy.default unset in argocd-rbac-cm"

// YAML renders argocd-cm, argocd-rbac-cm and one CI pod per ServiceAccount
// as YAML documents.
func (a ArgoCDAPI) YAML() ([]byte, error) {
	docs, err := a.documents()
	if err != nil {
		return nil, err
	}
	var out []byte
	for i, d := range docs {
		b, err := marshal(d)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, b...)
	}
	return out, nil
}

// configMap is the part of a core/v1 ConfigMap the output uses.
type configMap struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Data       map[string]string `json:"data"`
}

// dexConfig is the part of Dex's config that argocd-cm's dex.config
// holds; Argo CD adds the issuer, storage, web and its static clients.
type dexConfig struct {
	Connectors []dexConnector `json:"connectors"`
	Expiry     *dexExpiry     `json:"expiry,omitempty"`
}

type dexExpiry struct {
	IDTokens string `json:"idTokens"`
}

type dexConnector struct {
	Type   string        `json:"type"`
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Config oidcConnector `json:"config"`
}

// oidcConnector is Dex's oidc connector set to verify ServiceAccount
// tokens. The false fields are rendered on purpose: each one is a default
// that breaks the exchange.
type oidcConnector struct {
	Issuer string `json:"issuer"`
	// RootCAs holds base64 PEM, one of the forms Dex reads.
	RootCAs []string `json:"rootCAs,omitempty"`
	// Scopes replaces Dex's default profile and email: a ServiceAccount
	// token has no email, and Dex refuses one without it otherwise.
	Scopes []string `json:"scopes"`
	// UserNameKey: the token has no name claim; sub is the ServiceAccount.
	UserNameKey               string `json:"userNameKey"`
	InsecureSkipEmailVerified bool   `json:"insecureSkipEmailVerified"`
	// GetUserInfo false: Kubernetes serves no userinfo endpoint; Dex
	// verifies the token against the issuer's keys itself.
	GetUserInfo bool `json:"getUserInfo"`
}

// ciPod is the part of a core/v1 Pod the CI pod uses.
type ciPod struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   podMeta   `json:"metadata"`
	Spec       ciPodSpec `json:"spec"`
}

type podMeta struct {
	GenerateName string `json:"generateName"`
	Namespace    string `json:"namespace"`
}

type ciPodSpec struct {
	ServiceAccountName string `json:"serviceAccountName"`
	// AutomountServiceAccountToken false: the pod holds one token, for
	// Argo CD, and none the API server accepts.
	AutomountServiceAccountToken bool          `json:"automountServiceAccountToken"`
	RestartPolicy                string        `json:"restartPolicy"`
	Containers                   []ciContainer `json:"containers"`
	Volumes                      []ciVolume    `json:"volumes"`
}

type ciContainer struct {
	Name         string        `json:"name"`
	Image        string        `json:"image"`
	Command      []string      `json:"command"`
	Args         []string      `json:"args"`
	Env          []envVar      `json:"env"`
	VolumeMounts []volumeMount `json:"volumeMounts"`
}

// ciVolume is a pod volume: projected, an emptyDir or a ConfigMap.
type ciVolume struct {
	Name      string           `json:"name"`
	Projected *projectedSource `json:"projected,omitempty"`
	EmptyDir  *emptyDirSource  `json:"emptyDir,omitempty"`
	ConfigMap *configMapSource `json:"configMap,omitempty"`
}

type projectedSource struct {
	Sources []projection `json:"sources"`
}

type projection struct {
	ServiceAccountToken saTokenProjection `json:"serviceAccountToken"`
}

type saTokenProjection struct {
	Audience          string `json:"audience"`
	ExpirationSeconds int64  `json:"expirationSeconds"`
	Path              string `json:"path"`
}

// serviceAccount is one --service-account.
type serviceAccount struct{ namespace, name string }

// subject is the Argo CD RBAC subject the ServiceAccount's exchanged token
// carries (federated_claims.user_id): its Kubernetes user name.
func (s serviceAccount) subject() string {
	return "system:serviceaccount:" + s.namespace + ":" + s.name
}

func (a ArgoCDAPI) documents() ([]any, error) {
	if a.PolicyDefault != "" {
		return nil, fmt.Errorf(policyDefaultRefused, a.PolicyDefault)
	}
	argocdURL, err := checkArgoCDURL(a.URL)
	if err != nil {
		return nil, err
	}
	if errs := validation.IsDNS1123Label(a.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("--namespace %q is not a namespace name (%s); set --namespace to where Argo CD runs, like argocd", a.Namespace, errs[0])
	}
	cm, err := a.argoCDConfigMap(argocdURL)
	if err != nil {
		return nil, err
	}
	sas, err := parseServiceAccounts(a.ServiceAccounts)
	if err != nil {
		return nil, err
	}
	rbac, err := a.rbacConfigMap(sas)
	if err != nil {
		return nil, err
	}
	docs := []any{cm, rbac}
	pods, err := a.ciPods(argocdURL, sas)
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		docs = append(docs, p)
	}
	return docs, nil
}

// checkArgoCDURL parses Argo CD's url: https, a host, maybe a root path,
// nothing else. The trailing slash goes, as Argo CD appends /api/dex.
func checkArgoCDURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("no Argo CD URL; set --url to argocd-cm's url, like https://argocd.example.com")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--url %q is not an https URL of a host; set --url to argocd-cm's url, like https://argocd.example.com", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// argoCDConfigMap is argocd-cm's url and dex.config.
func (a ArgoCDAPI) argoCDConfigMap(argocdURL *url.URL) (configMap, error) {
	conn, err := a.connector()
	if err != nil {
		return configMap{}, err
	}
	dex := dexConfig{Connectors: []dexConnector{conn}}
	if a.IDTokenExpiry < 0 {
		return configMap{}, fmt.Errorf("--id-token-expiry %s is negative; set a duration like 1h, or leave it out for Dex's 24h", a.IDTokenExpiry)
	}
	if a.IDTokenExpiry > 0 {
		dex.Expiry = &dexExpiry{IDTokens: a.IDTokenExpiry.String()}
	}
	dexYAML, err := marshal(dex)
	if err != nil {
		return configMap{}, err
	}
	return configMap{
		APIVersion: "v1",
		Kind:       "ConfigMap",
		Metadata:   argoCDMeta("argocd-cm", a.Namespace),
		Data:       map[string]string{"url": argocdURL.String(), "dex.config": string(dexYAML)},
	}, nil
}

// argoCDMeta names one of Argo CD's ConfigMaps, with the label its
// settings informer selects them by (app.kubernetes.io/part-of: argocd):
// without it Argo CD does not see a ConfigMap applied fresh.
func argoCDMeta(name, namespace string) objectMeta {
	return objectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": partOfArgoCD}}
}

// isConnectorID reports whether id is safe in a URL path and a form value:
// a letter or digit, then letters, digits, dots, underscores and dashes. (A
// function, not a package-level regular expression, which every start of
// brokercred would compile, credential calls included.)
func isConnectorID(id string) bool {
	return id != "" && id[0] != '.' && id[0] != '_' && id[0] != '-' && onlyNameChars(id)
}

func (a ArgoCDAPI) connector() (dexConnector, error) {
	if !isConnectorID(a.ConnectorID) {
		return dexConnector{}, fmt.Errorf("--connector-id %q is not a connector ID of letters, digits, '.', '_' and '-'; set --connector-id like k8s-sa", a.ConnectorID)
	}
	if err := checkIssuer(a.Issuer); err != nil {
		return dexConnector{}, err
	}
	c := dexConnector{Type: "oidc", ID: a.ConnectorID, Name: connectorName, Config: oidcConnector{
		Issuer:                    a.Issuer,
		Scopes:                    []string{"openid"},
		UserNameKey:               "sub",
		InsecureSkipEmailVerified: true,
	}}
	if a.IssuerCAFile != "" {
		ca, err := readIssuerCA(a.IssuerCAFile)
		if err != nil {
			return dexConnector{}, err
		}
		c.Config.RootCAs = []string{base64.StdEncoding.EncodeToString(ca)}
	}
	return c, nil
}

func checkIssuer(issuer string) error {
	if issuer == "" {
		return errors.New("no ServiceAccount issuer; set --issuer to the issuer of kubectl get --raw /.well-known/openid-configuration")
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("ServiceAccount issuer %q is not an https URL; set --issuer to the issuer of kubectl get --raw /.well-known/openid-configuration, like https://kubernetes.default.svc.cluster.local", issuer)
	}
	return nil
}

// readIssuerCA reads the issuer's CA bundle and refuses a file without a
// certificate in it.
func readIssuerCA(file string) ([]byte, error) {
	ca, err := readCA(file)
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return ca, nil
	case errors.As(err, &pathErr):
		return nil, fmt.Errorf("read issuer CA: %w; set --issuer-ca-file to the cluster's CA in PEM (kube-root-ca.crt's ca.crt)", pathErr)
	}
	return nil, fmt.Errorf("issuer CA %s holds no PEM certificate; set --issuer-ca-file to the cluster's CA in PEM (kube-root-ca.crt's ca.crt)", file)
}

// parseServiceAccounts reads NS:NAME pairs; at least one, none twice.
func parseServiceAccounts(in []string) ([]serviceAccount, error) {
	if len(in) == 0 {
		return nil, errors.New("no ServiceAccount; set --service-account NS:NAME for each one that may call Argo CD's API")
	}
	seen := map[serviceAccount]bool{}
	var sas []serviceAccount
	for _, s := range in {
		ns, name, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("--service-account %q is not NS:NAME; pass --service-account ci:deployer", s)
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--service-account %q: namespace %q is invalid (%s); pass --service-account NS:NAME", s, ns, errs[0])
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, fmt.Errorf("--service-account %q: name %q is invalid (%s); pass --service-account NS:NAME", s, name, errs[0])
		}
		sa := serviceAccount{namespace: ns, name: name}
		if seen[sa] {
			return nil, fmt.Errorf("--service-account %s is given twice; list each ServiceAccount once", s)
		}
		seen[sa] = true
		sas = append(sas, sa)
	}
	return sas, nil
}

// isPolicyField reports whether v stays one field in casbin's CSV: not
// empty, no comma, quote, whitespace or comment sign.
func isPolicyField(v string) bool {
	return v != "" && !strings.ContainsFunc(v, func(c rune) bool {
		return c == ',' || c == '"' || c == '#' || unicode.IsSpace(c)
	})
}

// rbacConfigMap is argocd-rbac-cm with the grants in policy.NAME.csv, so
// the admin's own policy.csv stays as it is.
func (a ArgoCDAPI) rbacConfigMap(sas []serviceAccount) (configMap, error) {
	key := "policy." + a.PolicyName + ".csv"
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 || a.PolicyName == "" || strings.Contains(a.PolicyName, ",") {
		return configMap{}, fmt.Errorf("--policy-name %q does not make a ConfigMap key policy.NAME.csv; set --policy-name like ci-deployer", a.PolicyName)
	}
	for flag, v := range map[string]string{"--project": a.Project, "--app": a.App} {
		if !isPolicyField(v) {
			return configMap{}, fmt.Errorf("%s %q is not one RBAC field (no comma, quote, space or #); set %s to a name or a glob", flag, v, flag)
		}
	}
	if strings.Contains(a.Project, "/") {
		return configMap{}, fmt.Errorf("--project %q holds a /; set --project to the project name and --app to NAME or NAMESPACE/NAME", a.Project)
	}
	if len(a.Actions) == 0 {
		return configMap{}, errors.New("no application action; set --action get (and sync, ...) for what the ServiceAccounts may do")
	}
	for _, act := range a.Actions {
		if !isPolicyField(act) {
			return configMap{}, fmt.Errorf("--action %q is not one RBAC field (no comma, quote, space or #); pass --action get or --action sync", act)
		}
	}
	return configMap{
		APIVersion: "v1",
		Kind:       "ConfigMap",
		Metadata:   argoCDMeta("argocd-rbac-cm", a.Namespace),
		Data:       map[string]string{key: a.policyCSV(sas)},
	}, nil
}

// policyCSV grants each ServiceAccount the application actions on
// PROJECT/APP and projects get on PROJECT, which the argocd CLI reads for
// app get and app sync.
func (a ArgoCDAPI) policyCSV(sas []serviceAccount) string {
	var b strings.Builder
	for _, sa := range sas {
		for _, act := range a.Actions {
			fmt.Fprintf(&b, "p, %s, applications, %s, %s/%s, allow\n", sa.subject(), act, a.Project, a.App)
		}
		fmt.Fprintf(&b, "p, %s, projects, get, %s, allow\n", sa.subject(), a.Project)
	}
	return b.String()
}

// ciPods is one CI pod per ServiceAccount: the projected token, the
// token cache in memory, and brokercred run with the argocd CLI.
func (a ArgoCDAPI) ciPods(argocdURL *url.URL, sas []serviceAccount) ([]ciPod, error) {
	if a.Image == "" {
		return nil, errors.New("no CI image; set --image to the image your CI job runs, holding the argocd CLI and brokercred")
	}
	if a.Command == "" {
		return nil, errors.New("no command; set --command to brokercred's path in the CI image, or brokercred to find it on PATH")
	}
	if a.TokenAudience == "" {
		return nil, errors.New("no token audience; set --token-audience to an audience the API server does not accept, like argocd")
	}
	ca, err := a.caMount()
	if err != nil {
		return nil, err
	}
	args := append([]string{"run"}, ExecArgs(a.exchangeOptions(argocdURL))...)
	args = append(append(args, "--"), a.run()...)
	env := []envVar{{Name: ArgoCDServerEnv, Value: argocdURL.Host}}
	if opts := a.argoCDOpts(argocdURL); opts != "" {
		env = append(env, envVar{Name: argoCDOptsEnv, Value: opts})
	}
	volumes := []ciVolume{
		{Name: ArgoCDTokenVolume, Projected: &projectedSource{Sources: []projection{{ServiceAccountToken: saTokenProjection{
			Audience: a.TokenAudience, ExpirationSeconds: argoCDTokenExpiry, Path: "token",
		}}}}},
		{Name: CacheVolume, EmptyDir: &emptyDirSource{Medium: "Memory", SizeLimit: cacheSizeLimit}},
	}
	mounts := []volumeMount{
		{Name: ArgoCDTokenVolume, MountPath: argoCDTokenDir, ReadOnly: true},
		{Name: CacheVolume, MountPath: DefaultCacheDir},
	}
	if ca != nil {
		volumes = append(volumes, ciVolume{Name: CAVolume, ConfigMap: &configMapSource{Name: ca.configMap}})
		mounts = append(mounts, volumeMount{Name: CAVolume, MountPath: ca.file, SubPath: ca.key, ReadOnly: true})
	}
	var pods []ciPod
	for _, sa := range sas {
		pods = append(pods, ciPod{
			APIVersion: "v1",
			Kind:       "Pod",
			Metadata:   podMeta{GenerateName: "argocd-ci-", Namespace: sa.namespace},
			Spec: ciPodSpec{
				ServiceAccountName: sa.name,
				RestartPolicy:      "Never",
				Containers: []ciContainer{{
					Name: "argocd", Image: a.Image, Command: []string{a.Command}, Args: args,
					Env: env, VolumeMounts: mounts,
				}},
				Volumes: volumes,
			},
		})
	}
	return pods, nil
}

// exchangeOptions are brokercred's flags for the exchange at Argo CD's
// Dex: the public CLI client, the pod's projected token, openid and
// federated:id, and argo-cd-cli as the target that names the cache entry.
func (a ArgoCDAPI) exchangeOptions(argocdURL *url.URL) credential.Options {
	o := credential.Options{
		Protocol:  "token-exchange",
		BrokerURL: argocdURL.String() + DexTokenPath,
		Target:    ArgoCDCLIClient,
		TokenFile: argoCDTokenDir + "/token",
		CAFile:    a.CAFile,
		CacheDir:  DefaultCacheDir,
	}
	o.OAuth = broker.OAuthClient{ClientID: ArgoCDCLIClient, Scopes: []string{"openid", FederatedIDScope}}
	o.TokenExchange.ConnectorID = a.ConnectorID
	return o
}

// argoCDOpts are the argocd CLI flags the pod sets through ARGOCD_OPTS:
// the CA and the root path Argo CD is served under, when there are.
func (a ArgoCDAPI) argoCDOpts(argocdURL *url.URL) string {
	var opts []string
	if a.CAFile != "" {
		opts = append(opts, "--server-crt", a.CAFile)
	}
	if argocdURL.Path != "" {
		opts = append(opts, "--grpc-web-root-path", argocdURL.Path)
	}
	return strings.Join(opts, " ")
}

// caMount is the ConfigMap key mounted at CAFile, nil without
// CAConfigMap. ARGOCD_OPTS is split like a shell line, so the path holds
// no space or quote.
func (a ArgoCDAPI) caMount() (*caSource, error) {
	if a.CAFile != "" && (!path.IsAbs(a.CAFile) || path.Clean(a.CAFile) != a.CAFile || strings.ContainsAny(a.CAFile, " \t\"'\\")) {
		return nil, fmt.Errorf("--ca-file %q is not a clean absolute path without spaces or quotes; set --ca-file like /etc/argocd-ca/ca.crt", a.CAFile)
	}
	for dir, holds := range map[string]string{argoCDTokenDir: "the projected token", DefaultCacheDir: "brokercred's own emptyDir"} {
		if a.CAFile == dir || strings.HasPrefix(a.CAFile, dir+"/") {
			return nil, fmt.Errorf("--ca-file %s lies in %s, which holds %s; set --ca-file outside it, like /etc/argocd-ca/ca.crt", a.CAFile, dir, holds)
		}
	}
	h := HelmValues{Exec: Exec{Command: a.Command, Options: credential.Options{CAFile: a.CAFile, CacheDir: DefaultCacheDir}}, CAConfigMap: a.CAConfigMap}
	return h.caMount()
}

// run is the CI pod's command. kong keeps the -- that ends the flags as
// the first element of a passthrough argument; it is not the command.
func (a ArgoCDAPI) run() []string {
	r := a.JobCommand
	if len(r) > 0 && r[0] == "--" {
		r = r[1:]
	}
	if len(r) == 0 {
		return defaultRun
	}
	return r
}
