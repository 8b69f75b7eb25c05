package plugin_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/plugin"
)

// FuzzReadExecInfo feeds arbitrary KUBERNETES_EXEC_INFO values to the
// parser: it must not panic, must fail in one line that names the variable,
// and must accept only valid JSON asking for a version brokercred writes,
// handing on the cluster config as valid JSON.
func FuzzReadExecInfo(f *testing.F) {
	f.Add(`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false,"cluster":{"server":"https://dev.example.com","config":{"clusterName":"dev"}}}}`)
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		info, err := plugin.ReadExecInfo(raw)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, plugin.ExecInfoEnv+" ") {
				t.Fatalf("error %q is not one line naming %s", msg, plugin.ExecInfoEnv)
			}
			return
		}
		if info.APIVersion != plugin.APIVersionV1 && info.APIVersion != plugin.APIVersionV1beta1 {
			t.Fatalf("accepted apiVersion %q", info.APIVersion)
		}
		if raw != "" && !json.Valid([]byte(raw)) {
			t.Fatal("accepted a value that is not valid JSON")
		}
		if info.ClusterConfig != nil && !json.Valid(info.ClusterConfig) {
			t.Fatal("cluster config is not valid JSON")
		}
	})
}
