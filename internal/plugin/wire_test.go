package plugin

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	clientauthv1beta1 "k8s.io/client-go/pkg/apis/clientauthentication/v1beta1"
)

// The wire types in wire.go stand in for client-go's clientauthentication
// types. These tests hold them to the real types in both directions.

func TestWriteCredentialMatchesClientGoTypes(t *testing.T) {
	expiry := time.Date(2026, 11, 24, 12, 0, 50, 999, time.FixedZone("CET", 3600))
	meta := func(v string) metav1.TypeMeta { return metav1.TypeMeta{APIVersion: v, Kind: "ExecCredential"} }
	exp := &metav1.Time{Time: expiry}
	for apiVersion, real := range map[string]any{
		APIVersionV1: clientauthv1.ExecCredential{TypeMeta: meta(APIVersionV1),
			Status: &clientauthv1.ExecCredentialStatus{Token: "TOKEN", ExpirationTimestamp: exp}},
		APIVersionV1beta1: clientauthv1beta1.ExecCredential{TypeMeta: meta(APIVersionV1beta1),
			Status: &clientauthv1beta1.ExecCredentialStatus{Token: "TOKEN", ExpirationTimestamp: exp}},
	} {
		want, err := json.Marshal(real)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := WriteCredential(&got, apiVersion, "TOKEN", expiry); err != nil {
			t.Fatal(err)
		}
		if got.String() != string(want)+"\n" {
			t.Errorf("%s: brokercred wrote\n%s\nclient-go's types write\n%s", apiVersion, got.String(), want)
		}
	}
}

func TestReadExecInfoFromClientGoTypes(t *testing.T) {
	config := []byte(`{"clusterName":"east"}`)
	infos := map[string]any{
		APIVersionV1: clientauthv1.ExecCredential{
			TypeMeta: metav1.TypeMeta{APIVersion: APIVersionV1, Kind: "ExecCredential"},
			Spec: clientauthv1.ExecCredentialSpec{Cluster: &clientauthv1.Cluster{
				Server: "https://east:6443", CertificateAuthorityData: []byte("CA"), Config: runtime.RawExtension{Raw: config}}},
		},
		APIVersionV1beta1: clientauthv1beta1.ExecCredential{
			TypeMeta: metav1.TypeMeta{APIVersion: APIVersionV1beta1, Kind: "ExecCredential"},
			Spec: clientauthv1beta1.ExecCredentialSpec{Cluster: &clientauthv1beta1.Cluster{
				Server: "https://east:6443", CertificateAuthorityData: []byte("CA"), Config: runtime.RawExtension{Raw: config}}},
		},
	}
	for apiVersion, cred := range infos {
		raw, err := json.Marshal(cred)
		if err != nil {
			t.Fatal(err)
		}
		info, err := ReadExecInfo(string(raw))
		if err != nil {
			t.Fatalf("%s: %v", apiVersion, err)
		}
		if info.APIVersion != apiVersion || info.Server != "https://east:6443" || string(info.ClusterConfig) != string(config) {
			t.Errorf("%s: ReadExecInfo = %+v, want server https://east:6443 and config %s", apiVersion, info, config)
		}
	}
}
