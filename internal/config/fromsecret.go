package config

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// lastAppliedAnnotation is where kubectl apply keeps the whole object it
// last applied: for a cluster Secret, the old credential in clear text. It
// is left out without a report: kubectl writes it anew when the converted
// Secret is applied.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// keptAnnotation reports whether a conversion copies the annotation key.
// It is an allow-list: Argo CD's own annotations (argocd.argoproj.io/…,
// such as the tracking-id of an Application that manages the Secret, and
// managed-by, which argocd cluster add writes) and Helm's release
// ownership (meta.helm.sh/release-name and -namespace). Each holds a name,
// never an object. Every other annotation is left out, and reported by
// key unless it is lastAppliedAnnotation: tools keep whole copies of the object in theirs (kubectl's
// last-applied-configuration, kapp's kapp.k14s.io/original, Rancher's
// objectset.rio.cattle.io/applied), so an annotation this list does not
// know may hold the old credential.
func keptAnnotation(key string) bool {
	switch key {
	case "managed-by", "meta.helm.sh/release-name", "meta.helm.sh/release-namespace":
		return true
	}
	return strings.HasPrefix(key, "argocd.argoproj.io/")
}

// keptKeys are the keys of a cluster Secret that a conversion copies as
// they are; config is rebuilt, and every other key is dropped.
var keptKeys = []string{"name", "server", "project", "namespaces", "clusterResources", "shard"}

// Render prints the cluster Secret the flags describe or, with FromSecret,
// the Secrets read from FromSecret ("-" for stdin) rewritten to get their
// token from brokercred. A Secret that cannot be converted is left out and
// reported on report as one line naming it; Render fails only when nothing
// was converted, or the input or the flags are wrong.
func (a ArgoCDCluster) Render(stdin io.Reader, report io.Writer) ([]byte, error) {
	if a.FromSecret == "" {
		return a.YAML()
	}
	if err := a.checkFromSecret(); err != nil {
		return nil, err
	}
	data, err := a.readInput(stdin)
	if err != nil {
		return nil, err
	}
	items, isList, err := splitObjects(data)
	if err != nil {
		return nil, fmt.Errorf("--from-secret %s %w", a.FromSecret, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("--from-secret %s holds no Secret; give the output of kubectl get secret -n argocd -l %s=cluster -o yaml", a.FromSecret, SecretTypeLabel)
	}
	var converted []secret
	for i, raw := range items {
		s, dropped, err := a.convert(raw)
		if err != nil {
			if !isList {
				return nil, fmt.Errorf("%s: %w", objectRef(raw, i), err)
			}
			fmt.Fprintf(report, "brokercred: left out %s: %v\n", objectRef(raw, i), err)
			continue
		}
		if len(dropped) > 0 {
			fmt.Fprintf(report, "brokercred: %s: left out annotations %s, as only Argo CD's (argocd.argoproj.io/*, managed-by) and Helm's (meta.helm.sh/release-*) are sure to hold no old credential; add back after review those you need\n", objectRef(raw, i), strings.Join(dropped, ", "))
		}
		converted = append(converted, s)
	}
	switch {
	case !isList:
		return marshal(converted[0])
	case len(converted) == 0:
		return nil, fmt.Errorf("none of the %d Secrets in --from-secret %s was converted; fix the causes reported above", len(items), a.FromSecret)
	}
	return marshal(secretList{APIVersion: "v1", Kind: "List", Items: converted})
}

// secretList is a kubectl List of Secrets.
type secretList struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Items      []secret `json:"items"`
}

// checkFromSecret refuses the settings a conversion cannot honour: those
// each Secret brings itself, and one --target for all of them.
func (a ArgoCDCluster) checkFromSecret() error {
	if err := checkExec(a.Exec); err != nil {
		return err
	}
	if err := checkNoTarget(a.Options, "--from-secret converts every Secret it reads", "let each Secret's name key (or --cluster-info) name its target"); err != nil {
		return err
	}
	for _, f := range []struct {
		set        bool
		flag, kept string
	}{
		{a.Name != "", "name", "name key"},
		{a.Server != "", "server", "server key"},
		{a.ServerCAFile != "", "server-ca-file", "tlsClientConfig.caData"},
		{a.SecretName != "", "secret-name", "metadata.name"},
		{len(a.Labels) > 0, "label", "labels"},
		{a.Project != "", "project", "project key"},
		{len(a.Namespaces) > 0, "namespaces", "namespaces key"},
	} {
		if f.set {
			return fmt.Errorf("--from-secret keeps each Secret's own %s, so --%s would be ignored; leave --%s out and edit the Secrets after review", f.kept, f.flag, f.flag)
		}
	}
	return nil
}

// readInput reads FromSecret, or stdin for "-".
func (a ArgoCDCluster) readInput(stdin io.Reader) ([]byte, error) {
	var data []byte
	var err error
	if a.FromSecret == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(a.FromSecret)
	}
	if err != nil {
		return nil, fmt.Errorf("read --from-secret %s: %w; give a file holding kubectl get secret -o yaml output, or - for stdin", a.FromSecret, err)
	}
	return data, nil
}

// inputObject is what a conversion reads of a Secret. Unknown fields are
// ignored, so nothing else of the input reaches the output.
type inputObject struct {
	Kind       string            `json:"kind"`
	Metadata   inputMeta         `json:"metadata"`
	Type       string            `json:"type"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
}

type inputMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// splitObjects reads the YAML or JSON documents in data and returns the
// objects to convert: each document, or a List's items. isList is false
// for a single document that is not a List. Its errors finish a sentence
// that starts with the input's name and never quote the input.
func splitObjects(data []byte) (items []json.RawMessage, isList bool, err error) {
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var obj json.RawMessage
		if err == nil {
			obj, err = yaml.YAMLToJSON(doc)
		}
		if err != nil {
			// Parser messages can quote the input, which may hold
			// credentials: keep only the line number.
			where := fmt.Sprintf("document %d", n)
			if m := regexp.MustCompile(`line (\d+)`).FindStringSubmatch(err.Error()); m != nil { // compiled only for an error
				where += ", line " + m[1]
			}
			return nil, false, fmt.Errorf("does not parse as YAML or JSON (%s); give kubectl get secret -o yaml or -o json output", where)
		}
		if bytes.Equal(obj, []byte("null")) {
			continue // an empty document
		}
		var list struct {
			Kind  string            `json:"kind"`
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(obj, &list) == nil && (list.Kind == "List" || list.Kind == "SecretList") {
			items = append(items, list.Items...)
			isList = true
			continue
		}
		items = append(items, obj)
	}
	return items, isList || len(items) > 1, nil
}

// objectRef names an object in reports: namespace/name, or its position
// when it has no readable name.
func objectRef(raw json.RawMessage, i int) string {
	var obj struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	switch {
	case json.Unmarshal(raw, &obj) != nil || obj.Metadata.Name == "":
		return fmt.Sprintf("item %d", i+1)
	case obj.Metadata.Namespace == "":
		return obj.Metadata.Name
	}
	return obj.Metadata.Namespace + "/" + obj.Metadata.Name
}

// convert rewrites one cluster Secret: its metadata (annotations as
// keptAnnotation allows), type and keptKeys as they are, the TLS settings
// of its config, and brokercred's execProviderConfig in place of any
// credential. dropped names the annotations left out, quoted and sorted.
// Its errors name no value of the input.
func (a ArgoCDCluster) convert(raw json.RawMessage) (s secret, dropped []string, err error) {
	var in inputObject
	if err := json.Unmarshal(raw, &in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return secret{}, nil, fmt.Errorf("does not parse as a Secret (%s is a JSON %s); give the Secrets as kubectl get prints them", typeErr.Field, typeErr.Value)
		}
		return secret{}, nil, errors.New("does not parse as a Secret; give the Secrets as kubectl get prints them")
	}
	if in.Kind != "Secret" {
		return secret{}, nil, fmt.Errorf("is not a Secret (kind %q); give only Secrets, from kubectl get secret", in.Kind)
	}
	if in.Metadata.Name == "" {
		return secret{}, nil, errors.New("has no metadata.name; give the Secrets as kubectl get prints them")
	}
	if in.Metadata.Labels[SecretTypeLabel] != "cluster" {
		return secret{}, nil, fmt.Errorf("is not an Argo CD cluster Secret (no label %s: cluster); select Secrets with -l %s=cluster", SecretTypeLabel, SecretTypeLabel)
	}
	values, err := secretValues(in)
	if err != nil {
		return secret{}, nil, err
	}
	if values["server"] == "" {
		return secret{}, nil, errors.New("has no server key; add the remote API server's https URL to the Secret as server")
	}
	if err := checkServerURL(values["server"], "server", "fix the Secret's server key to the remote API server's https URL"); err != nil {
		return secret{}, nil, err
	}
	if values["name"] == "" {
		return secret{}, nil, errors.New("has no name key; add the cluster's name to the Secret as name, the target brokercred asks the broker for")
	}
	tls, err := keptTLS(values["config"])
	if err != nil {
		return secret{}, nil, err
	}
	r, err := resolve(Cluster{Name: values["name"], Server: values["server"], ClusterInfo: a.ClusterInfo}, a.Exec)
	if err != nil {
		return secret{}, nil, err
	}
	cfg, err := r.config(tls)
	if err != nil {
		return secret{}, nil, err
	}
	out := map[string]string{"config": cfg}
	for _, k := range keptKeys {
		if v := values[k]; v != "" {
			out[k] = v
		}
	}
	meta, dropped := a.keptMeta(in.Metadata)
	return secret{
		APIVersion: "v1",
		Kind:       "Secret",
		Metadata:   meta,
		Type:       orDefault(in.Type, "Opaque"),
		StringData: out,
	}, dropped, nil
}

// secretValues are the Secret's values in clear: data decoded, then
// stringData over it, as the API server merges them.
func secretValues(in inputObject) (map[string]string, error) {
	values := map[string]string{}
	for k, v := range in.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("data.%s is not base64; give the Secret as kubectl get prints it, or the value in clear under stringData", k)
		}
		values[k] = string(b)
	}
	for k, v := range in.StringData {
		values[k] = v
	}
	return values, nil
}

// keptTLS reads the TLS settings brokercred keeps from a config key:
// caData, serverName and insecure. Certificates, keys, tokens, passwords
// and every other field are left behind. An empty config keeps none.
func keptTLS(config string) (tlsClientConfig, error) {
	if config == "" {
		return tlsClientConfig{}, nil
	}
	var cfg struct {
		TLSClientConfig *json.RawMessage `json:"tlsClientConfig"`
	}
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return tlsClientConfig{}, errors.New("config is not a JSON object; fix the Secret's config key, or write the Secret anew with brokercred config argocd-cluster --name NAME --server URL")
	}
	var tls tlsClientConfig
	if cfg.TLSClientConfig != nil {
		if err := json.Unmarshal(*cfg.TLSClientConfig, &tls); err != nil {
			return tlsClientConfig{}, errors.New("config's tlsClientConfig does not parse (caData base64, serverName a string, insecure true or false); fix it in the Secret")
		}
	}
	return tls, nil
}

// keptMeta is the input's name, namespace (--namespace when it has none),
// labels and the annotations keptAnnotation allows; dropped names the
// others but lastAppliedAnnotation, quoted and sorted. Server-managed
// fields are not read at all.
func (a ArgoCDCluster) keptMeta(in inputMeta) (meta objectMeta, dropped []string) {
	var annotations map[string]string
	for _, k := range slices.Sorted(maps.Keys(in.Annotations)) {
		switch {
		case k == lastAppliedAnnotation:
			continue
		case !keptAnnotation(k):
			dropped = append(dropped, annotationName(k))
			continue
		}
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[k] = in.Annotations[k]
	}
	return objectMeta{
		Name:        in.Name,
		Namespace:   orDefault(in.Namespace, a.Namespace),
		Labels:      in.Labels,
		Annotations: annotations,
	}, dropped
}

// annotationName quotes an annotation key for a report. A key that is not
// a valid qualified name is not shown: it is not a name a tool wrote.
func annotationName(key string) string {
	if len(validation.IsQualifiedName(key)) > 0 {
		return "(a key that is not a qualified name)"
	}
	return strconv.Quote(key)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
