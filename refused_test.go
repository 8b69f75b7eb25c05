package main

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// TestRefusedTokenRecoversWithClientGo runs brokercred under the real
// client-go exec authenticator in this process. After the API server stops
// accepting the token already issued, client-go's 401 handling runs the
// plugin again; brokercred must fetch a new token (one broker request)
// instead of serving the refused one until it expires.
func TestRefusedTokenRecoversWithClientGo(t *testing.T) {
	f := newFixture(t, withClusters("dev"))
	f.target = "dev"
	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig(t, "dev", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.ServerVersion(cfg); err != nil {
		t.Fatalf("first call: %v", err)
	}
	f.APIs["dev"].RefuseIssued()
	if _, err = testkit.ServerVersion(cfg); !apierrors.IsUnauthorized(err) {
		t.Fatalf("call with the refused token: %v, want 401 (client-go does not retry the request)", err)
	}
	if v, err := testkit.ServerVersion(cfg); err != nil || v != brokertest.APIServerVersion {
		t.Fatalf("call after the refusal: %q, %v; want %s with a new token", v, err, brokertest.APIServerVersion)
	}
	if n := len(f.Broker.Requests()); n != 2 {
		t.Errorf("broker requests = %d, want 2 (the first token, then one after the refusal)", n)
	}
}

// TestRefusedTokenRecoversWithKubectl: each kubectl is a new process that
// finds the refused token in the disk cache; its 401 makes it run
// brokercred again, which fetches a new token, and the next kubectl works.
func TestRefusedTokenRecoversWithKubectl(t *testing.T) {
	t.Parallel() // its own fixtures; the kubectl-bound tests overlap each other
	bins := testkit.Kubectls()
	if len(bins) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	for _, name := range testkit.SortedNames(bins) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, withClusters("dev"))
			f.target = "dev"
			config := f.kubeconfig(t, "dev", false)
			get := func() testkit.Result {
				return runKubectl(t, bins[name], nil, "--kubeconfig", config, "get", "--raw", "/version")
			}
			if r := get(); r.Code != 0 {
				t.Fatalf("first kubectl: exit code %d\n%s", r.Code, redact(r.Stderr))
			}
			f.APIs["dev"].RefuseIssued()
			var ok bool
			for range 2 {
				r := get()
				if ok = r.Code == 0 && strings.Contains(r.Stdout, brokertest.APIServerVersion); ok {
					break
				}
			}
			if !ok {
				t.Fatal("kubectl still fails two calls after the refusal: brokercred serves the refused token")
			}
			if n := len(f.Broker.Requests()); n != 2 {
				t.Errorf("broker requests = %d, want 2", n)
			}
		})
	}
}
