package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// fromSecretTestdata holds internal/config's --from-secret inputs, their
// golden conversions, and the fake credentials planted in the inputs.
var fromSecretTestdata = filepath.Join("internal", "config", "testdata")

// allBadSecret is a List of one cluster Secret that cannot be converted: it
// has no server key.
const allBadSecret = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata:
    name: a
    namespace: argocd
    labels:
      argocd.argoproj.io/secret-type: cluster
  stringData:
    name: a
    config: '{"bearerToken": "FAKEsig-k2Jq9VxW4mTz7LpR"}'
`

// TestFromSecretCLI runs brokercred config argocd-cluster --from-secret as
// a user does: exit status 0 with the converted Secrets on stdout and one
// stderr line per Secret left out, or 1 with nothing on stdout when none
// was converted; neither shows a credential of the input.
func TestFromSecretCLI(t *testing.T) {
	allBad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(allBad, []byte(allBadSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(fromSecretTestdata, "argocd-cluster-from-secret-list.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	credentials := fakeCredentials(t)
	for _, tc := range []struct {
		name         string
		input        string
		wantCode     int
		wantStdout   string
		wantStderrRe string
	}{
		{"some converted", filepath.Join(fromSecretTestdata, "from-secret-list.yaml"), 0, string(want),
			`^brokercred: argocd/dev-cluster: left out annotations [^\n]+; [^\n]+\n(brokercred: left out argocd/[a-z0-9-]+: [^\n]+; [^\n]+\n){7}$`},
		{"none converted", allBad, 1, "",
			`^brokercred: left out argocd/a: has no server key; [^\n]+\nbrokercred: error: none of the 1 Secrets in --from-secret \S+ was converted; fix the causes reported above\n$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testkit.Run(t, []string{"HOME=" + t.TempDir()}, binary,
				"config", "argocd-cluster", "--from-secret", tc.input, "--broker-url", "https://ou.example.com/api/get-target-token")
			if r.Code != tc.wantCode {
				t.Errorf("exit status %d, want %d; stderr:\n%s", r.Code, tc.wantCode, r.Stderr)
			}
			if r.Stdout != tc.wantStdout {
				t.Errorf("stdout (-want +got):\n-%s\n+%s", tc.wantStdout, r.Stdout)
			}
			if !regexp.MustCompile(tc.wantStderrRe).MatchString(r.Stderr) {
				t.Errorf("stderr = %q, want it to match %q", r.Stderr, tc.wantStderrRe)
			}
			brokertest.NoLeak(t, "stdout", r.Stdout, credentials...)
			brokertest.NoLeak(t, "stderr", r.Stderr, credentials...)
		})
	}
}

// fakeCredentials are the credentials planted in the --from-secret inputs,
// each as it is and base64 encoded.
func fakeCredentials(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fromSecretTestdata, "fake-credentials.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, cred := range strings.Fields(string(data)) {
		all = append(all, cred, base64.StdEncoding.EncodeToString([]byte(cred)))
	}
	return all
}
