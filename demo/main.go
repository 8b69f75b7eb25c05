// Command demo runs brokercred's whole flow on loopback with an embedded
// default: a fake OpenUnison-style broker and a fake Kubernetes API server,
// both over TLS. It builds brokercred, runs it twice as client-go would (a
// broker round trip, then a cache hit), and calls the API with the token.
//
//	go run ./demo
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"crypto/tls"
	"crypto/x509"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

const subject = "system:serviceaccount:argocd:argocd-application-controller"

// clientEnv marks a child of the demo that plays one client process (a
// kubectl, an Argo CD controller): it runs brokercred once, as client-go
// does, and passes its output on.
const clientEnv = "BROKERCRED_DEMO_CLIENT"

func main() {
	if os.Getenv(clientEnv) != "" {
		os.Exit(runAsClient(os.Args[1], os.Args[2:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "brokercred-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	b := brokertest.NewServer(brokertest.Options{TTL: time.Minute})
	defer b.Close()
	api := brokertest.NewAPIServer(b, "dev-cluster")
	defer api.Close()
	step("fake token broker (OpenUnison get-target-token) at %s", b.URL)
	step("fake remote API server at %s, trusting only the broker's tokens for dev-cluster", api.URL)

	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(brokertest.PodToken(subject, time.Now().Add(time.Hour))), 0o600); err != nil {
		return err
	}
	step("projected pod token for %s written to %s", subject, tokenFile)

	bin := filepath.Join(dir, "brokercred")
	step("building brokercred")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	args := []string{"-v", "token", "--broker-url", b.URL, "--target", "dev-cluster", "--token-file", tokenFile,
		"--ca-file", b.CAFile(dir), "--cache-dir", filepath.Join(dir, "cache")}
	step("first call (what client-go runs): brokercred %s", shortArgs(args))
	if _, err := plugin(bin, args); err != nil {
		return err
	}
	step("second call, from a new process: served from the disk cache")
	cred, err := plugin(bin, args)
	if err != nil {
		return err
	}
	step("broker requests so far: %d", len(b.Requests()))

	version, err := getVersion(api, cred)
	if err != nil {
		return err
	}
	step("GET %s/version with the token: %s", api.URL, version)
	step("the ExecCredential brokercred printed (a fake demo token):")
	fmt.Print(string(cred))
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func shortArgs(args []string) string {
	return fmt.Sprint(args[1:5]) + " …"
}

// plugin runs brokercred from a new client process, as client-go in a new
// kubectl would: the demo starts itself as that client, showing brokercred's
// -v trace.
func plugin(bin string, args []string) ([]byte, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{bin}, args...)...)
	cmd.Env = append(os.Environ(), clientEnv+"=1")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("brokercred: %w", err)
	}
	return stdout.Bytes(), nil
}

// runAsClient runs bin with args as client-go does, with
// KUBERNETES_EXEC_INFO set, and returns its exit code.
func runAsClient(bin string, args []string) int {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), `KUBERNETES_EXEC_INFO={"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}`)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return 1
	}
	return 0
}

func getVersion(api *brokertest.APIServer, cred []byte) (string, error) {
	var c struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(cred, &c); err != nil {
		return "", fmt.Errorf("parse ExecCredential: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(api.CAPEM())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/version", nil)
	req.Header.Set("Authorization", "Bearer "+c.Status.Token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return fmt.Sprintf("%s %s", resp.Status, bytes.TrimSpace(body.Bytes())), nil
}
