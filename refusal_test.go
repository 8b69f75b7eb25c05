package main

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/testkit"
)

// refreshWindow is the least time between two replacements of a refused
// token of one key (token.refusedRefreshWindow), plus a second.
const refreshWindow = 11 * time.Second

// TestDispatcherKubectlIsNoRefusal: the kubectl on PATH may be the Google
// Cloud SDK's dispatcher, which runs the plugin and then execs the
// versioned kubectl under the same process id, which runs it again. That
// second run is a new client, not a refusal: 40 calls spread over more than
// the refresh window make one broker request. Any kubectl holds the same.
func TestDispatcherKubectlIsNoRefusal(t *testing.T) {
	bins := testkit.Kubectls()
	path, ok := bins["kubectl"]
	if !ok {
		t.Skip("no kubectl on PATH: install kubectl (the Google Cloud SDK's dispatcher shows the case) to run this test")
	}
	f := newFixture(t, withClusters("prod-east"))
	config := f.kubeconfig(t, f.target, false)
	start := time.Now()
	calls := 0
	// No sleep: calls go on until there are 40 and the window has passed.
	for calls < 40 || time.Since(start) < refreshWindow {
		if r := runKubectl(t, path, nil, "--kubeconfig", config, "get", "--raw", "/version"); r.Code != 0 {
			t.Fatalf("kubectl call %d: exit code %d\nstderr:\n%s", calls+1, r.Code, redact(r.Stderr))
		}
		calls++
	}
	n := len(f.Broker.Requests())
	if n != 1 {
		t.Errorf("%d kubectl calls over %s made %d broker requests, want 1", calls, time.Since(start).Round(time.Second), n)
	}
	t.Logf("%d calls of the kubectl on PATH over %s: %d broker request(s)", calls, time.Since(start).Round(time.Second), n)
}

// TestTwoAuthenticatorsInOneProcess: client-go keeps one exec authenticator
// per exec configuration and cluster info, and Argo CD holds several for one
// cluster. Each runs brokercred once per token lifetime: that is no
// refusal, so two of them cost one broker request. When the API server
// refuses the token, each recovers after its one failed request, with one
// more broker request between them.
func TestTwoAuthenticatorsInOneProcess(t *testing.T) {
	f := newFixture(t, withClusters("prod-east"))
	api := f.APIs[f.target]
	var clients []*discovery.DiscoveryClient
	for _, serverName := range []string{"", "example.com"} { // cluster infos that differ
		cfg := f.restConfig(f.target, "client.authentication.k8s.io/v1")
		cfg.ExecProvider.ProvideClusterInfo = true
		cfg.TLSClientConfig.ServerName = serverName
		clients = append(clients, discovery.NewDiscoveryClientForConfigOrDie(cfg))
	}
	version := func(i int) error {
		_, err := clients[i].ServerVersion()
		return err
	}
	for round := range 3 {
		for i := range clients {
			if err := version(i); err != nil {
				t.Fatalf("round %d, client %d: %v", round, i, err)
			}
		}
	}
	if n := len(f.Broker.Requests()); n != 1 {
		t.Fatalf("two authenticators made %d broker requests, want 1", n)
	}
	api.RefuseIssued()
	for i := range clients {
		_ = version(i) // refused: client-go does not retry it, but runs brokercred again
		if err := version(i); err != nil {
			t.Errorf("client %d after the refusal: %v; want the replaced token to work", i, err)
		}
	}
	if n := len(f.Broker.Requests()); n != 2 {
		t.Errorf("recovering from the refusal took %d broker requests in all, want 2", n)
	}
}

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

// TestRefusedTokenRecoversThroughEveryKubectl: after the API server refuses
// the cached token, the kubectl call after the refused one works, through
// the dispatcher and through each versioned kubectl, with one more broker
// request.
func TestRefusedTokenRecoversThroughEveryKubectl(t *testing.T) {
	t.Parallel() // its own fixtures; the kubectl-bound tests overlap each other
	bins := testkit.Kubectls()
	if len(bins) == 0 {
		t.Skip("no kubectl on PATH and no kubectl.1.* beside gcloud: install kubectl to run this test")
	}
	for _, name := range testkit.SortedNames(bins) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, withClusters("prod-east"))
			config := f.kubeconfig(t, f.target, false)
			get := func() testkit.Result {
				return runKubectl(t, bins[name], nil, "--kubeconfig", config, "get", "--raw", "/version")
			}
			if r := get(); r.Code != 0 {
				t.Fatalf("first call: exit code %d\nstderr:\n%s", r.Code, redact(r.Stderr))
			}
			f.APIs[f.target].RefuseIssued()
			var worked bool
			for range 2 { // the refused call, at most, then the one after it
				if r := get(); r.Code == 0 && strings.Contains(r.Stdout, brokertest.APIServerVersion) {
					worked = true
					break
				}
			}
			if !worked {
				t.Fatal("the call after the refused one failed too: brokercred served the refused token again")
			}
			if n := len(f.Broker.Requests()); n != 2 {
				t.Errorf("broker requests = %d, want 2 (the first token, its one replacement)", n)
			}
		})
	}
}
