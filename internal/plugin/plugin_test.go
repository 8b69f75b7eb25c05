package plugin

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestWriteCredentialGolden(t *testing.T) {
	expiry := time.Date(2026, 11, 24, 12, 0, 50, 999, time.FixedZone("CET", 3600))
	for _, tc := range []struct{ apiVersion, golden string }{
		{APIVersionV1, "execcredential-v1.json"},
		{APIVersionV1beta1, "execcredential-v1beta1.json"},
	} {
		t.Run(tc.apiVersion, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteCredential(&buf, tc.apiVersion, "TOKEN", expiry); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("ExecCredential (-want +got):\n-%s\n+%s", want, got)
			}
		})
	}
	if err := WriteCredential(&bytes.Buffer{}, "client.authentication.k8s.io/v1alpha1", "T", expiry); err == nil {
		t.Error("WriteCredential accepted v1alpha1")
	}
}

func TestReadExecInfo(t *testing.T) {
	for _, tc := range []struct {
		name, raw, wantVersion, wantServer, wantErr string
	}{
		{name: "unset means v1", raw: "", wantVersion: APIVersionV1},
		{name: "v1", raw: `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}`, wantVersion: APIVersionV1},
		{name: "v1beta1", raw: `{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{}}`, wantVersion: APIVersionV1beta1},
		{name: "v1 with cluster", raw: `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"cluster":{"server":"https://east:6443","config":{"clusterName":"east"}}}}`,
			wantVersion: APIVersionV1, wantServer: "https://east:6443"},
		{name: "unknown version", raw: `{"apiVersion":"client.authentication.k8s.io/v1alpha1","kind":"ExecCredential"}`,
			wantErr: `asks for apiVersion "client.authentication.k8s.io/v1alpha1"; set the exec config's apiVersion`},
		{name: "not json", raw: `{apiVersion`, wantErr: "KUBERNETES_EXEC_INFO is not valid JSON"},
		{name: "bad spec", raw: `{"apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":"east"}}`, wantErr: "does not hold a valid client.authentication.k8s.io/v1 ExecCredential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadExecInfo(tc.raw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.APIVersion != tc.wantVersion || got.Server != tc.wantServer {
				t.Errorf("ReadExecInfo = %+v, want version %s server %q", got, tc.wantVersion, tc.wantServer)
			}
		})
	}
}
