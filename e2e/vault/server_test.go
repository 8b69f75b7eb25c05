package vault

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/e2e/kube/kubeworld"
)

// vaultServer is a `vault server -dev -dev-tls` the test started on a free
// loopback port, with a root token of the test's choosing.
type vaultServer struct {
	url    string // https://127.0.0.1:PORT
	caFile string // the CA -dev-tls made, in the cert dir
	caPEM  []byte
	root   string // root token
	client *http.Client
	audit  string // the file audit device's log, once enabled
	proc   *kubeworld.Process
}

// startVault runs the vault binary in dev mode with TLS; wait for it with
// waitReady. Its HOME is a temp dir and it stores no token helper file.
func startVault(t *testing.T, name string) *vaultServer {
	t.Helper()
	certDir := t.TempDir()
	port := kubeworld.FreePort(t)
	v := &vaultServer{
		url:    "https://127.0.0.1:" + strconv.Itoa(port),
		caFile: filepath.Join(certDir, "vault-ca.pem"),
		root:   randomHex(t),
	}
	v.proc = kubeworld.Start(t, name, []string{"HOME=" + t.TempDir()}, vaultBin, "server",
		"-dev", "-dev-tls", "-dev-tls-cert-dir="+certDir, "-dev-listen-address=127.0.0.1:"+strconv.Itoa(port),
		"-dev-root-token-id="+v.root, "-dev-no-store-token")
	v.proc.Redact = redactDevBanner
	return v
}

// redactDevBanner drops the lines of the dev server's banner that show its
// unseal key and root token from a failed test's log tail.
func redactDevBanner(log string) string {
	lines := strings.Split(log, "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool {
		return strings.Contains(l, "Unseal Key:") || strings.Contains(l, "Root Token:")
	})
	return strings.Join(lines, "\n")
}

// waitReady waits until Vault has written its CA and answers its health
// check with 200 (initialized, unsealed, active).
func (v *vaultServer) waitReady(t *testing.T) {
	t.Helper()
	v.proc.WaitReady(t, func(ctx context.Context) error {
		if v.client == nil {
			pem, err := os.ReadFile(v.caFile)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("no certificate in %s yet", v.caFile)
			}
			transport := http.DefaultTransport.(*http.Transport).Clone()
			transport.TLSClientConfig.RootCAs = pool
			v.caPEM, v.client = pem, &http.Client{Transport: transport, Timeout: 30 * time.Second}
		}
		return kubeworld.HTTPOK(ctx, v.client, v.url+"/v1/sys/health")
	})
}

// call sends a request to Vault's API with the root token and returns the
// status and the decoded answer (nil when empty).
func (v *vaultServer) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var in io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		in = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, v.url+"/v1/"+path, in)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.root)
	resp, err := v.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s at Vault: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s at Vault: %v", method, path, err)
	}
	var answer map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &answer); err != nil {
			t.Fatalf("%s %s at Vault: %s answered with malformed JSON: %v", method, path, resp.Status, err)
		}
	}
	return resp.StatusCode, answer
}

// must is call that fails the test unless Vault answers 2xx.
func (v *vaultServer) must(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	code, answer := v.call(t, method, path, body)
	if code/100 != 2 {
		t.Fatalf("%s %s at Vault: HTTP %d %v", method, path, code, answer["errors"])
	}
	return answer
}

// enableAudit turns on a file audit device in dir. Vault writes each
// request and response to it before it answers, so counting its lines
// after a process has exited needs no waiting.
func (v *vaultServer) enableAudit(t *testing.T, dir string) {
	t.Helper()
	v.audit = filepath.Join(dir, "audit.log")
	v.must(t, http.MethodPut, "sys/audit/file", map[string]any{"type": "file", "options": map[string]string{"file_path": v.audit}})
}

// cost is what brokercred asked of Vault: login attempts, identity token
// requests (answered or refused) and Vault tokens revoked.
type cost struct {
	logins, tokens, revoked int
}

func (c cost) String() string {
	return fmt.Sprintf("%d logins, %d identity token requests, %d revoke-self", c.logins, c.tokens, c.revoked)
}

func (c cost) minus(d cost) cost {
	return cost{c.logins - d.logins, c.tokens - d.tokens, c.revoked - d.revoked}
}

// costs counts, in the audit log so far, the responses to logins at mount,
// to identity token requests, and the revoke-self calls that succeeded.
func (v *vaultServer) costs(t *testing.T, mount string) cost {
	t.Helper()
	f, err := os.Open(v.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var c cost
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Error   string `json:"error"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("Vault's audit log has a line that is not JSON: %v", err)
		}
		if e.Type != "response" {
			continue
		}
		switch path := e.Request.Path; {
		case path == "auth/"+mount+"/login":
			c.logins++
		case strings.HasPrefix(path, "identity/oidc/token/"):
			c.tokens++
		case path == "auth/token/revoke-self" && e.Error == "":
			c.revoked++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

// grant adds read on path to the ACL policy named policy.
func (v *vaultServer) grant(t *testing.T, policy, path string) {
	t.Helper()
	answer := v.must(t, http.MethodGet, "sys/policies/acl/"+policy, nil)
	rules, _ := answer["data"].(map[string]any)["policy"].(string)
	rules += fmt.Sprintf("\npath %q { capabilities = [\"read\"] }\n", path)
	v.must(t, http.MethodPut, "sys/policies/acl/"+policy, map[string]string{"policy": rules})
}

// liveTokens describes every Vault token alive but the root token: its
// path of creation and policies (nothing secret).
func (v *vaultServer) liveTokens(t *testing.T) []string {
	t.Helper()
	self := v.must(t, http.MethodGet, "auth/token/lookup-self", nil)
	rootAccessor, _ := self["data"].(map[string]any)["accessor"].(string)
	list := v.must(t, "LIST", "auth/token/accessors", nil)
	keys, _ := list["data"].(map[string]any)["keys"].([]any)
	var alive []string
	for _, k := range keys {
		accessor, _ := k.(string)
		if accessor == rootAccessor {
			continue
		}
		code, answer := v.call(t, http.MethodPost, "auth/token/lookup-accessor", map[string]string{"accessor": accessor})
		if code == http.StatusOK {
			data, _ := answer["data"].(map[string]any)
			alive = append(alive, fmt.Sprintf("token from %v with policies %v", data["path"], data["policies"]))
		}
	}
	return alive
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
