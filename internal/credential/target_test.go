package credential

import (
	"strings"
	"testing"
	"time"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
	"github.com/brokercred/brokercred/internal/plugin"
)

// execInfoFor is KUBERNETES_EXEC_INFO as client-go writes it with
// provideClusterInfo: true and the given cluster config JSON.
func execInfoFor(config string) string {
	return `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false,` +
		`"cluster":{"server":"https://east.example:6443","config":` + config + `}}}`
}

func TestResolveTarget(t *testing.T) {
	for _, tc := range []struct {
		name, flag, config, key string
		allowed                 []string
		want, wantErr           string
	}{
		{name: "flag only", flag: "dev", config: "null", want: "dev"},
		{name: "cluster name only", config: `{"clusterName":"east"}`, want: "east"},
		{name: "flag and cluster agree", flag: "east", config: `{"clusterName":"east"}`, want: "east"},
		{name: "other key", key: "name", config: `{"name":"west","clusterName":"east"}`, want: "west"},
		{name: "key missing falls back to flag", flag: "dev", config: `{"region":"eu"}`, want: "dev"},
		{name: "allowed by glob", config: `{"clusterName":"dev-east"}`, allowed: []string{"prod", "dev-*"}, want: "dev-east"},
		{name: "neither", config: "null", wantErr: `no target cluster; set --target or BROKERCRED_TARGET, or set provideClusterInfo: true with config {"clusterName": NAME}`},
		{name: "key missing and no flag", config: `{"region":"eu"}`, wantErr: "no target cluster"},
		{name: "conflict", flag: "dev", config: `{"clusterName":"prod"}`, wantErr: `--target "dev" and the cluster's config.clusterName "prod" disagree`},
		{name: "key not a string", config: `{"clusterName":42}`, wantErr: "config.clusterName is not a non-empty string"},
		{name: "key empty", config: `{"clusterName":""}`, wantErr: "config.clusterName is not a non-empty string"},
		{name: "config not an object", config: `["east"]`, wantErr: "spec.cluster.config) is not a JSON object"},
		{name: "not allowed", flag: "prod", allowed: []string{"dev-*"}, config: "null", wantErr: `target "prod" is not in --allowed-targets (dev-*)`},
		{name: "bad glob", flag: "prod", allowed: []string{"[dev"}, config: "null", wantErr: `--allowed-targets pattern "[dev" is malformed`},
		{name: "cloud cluster name", flag: "arn:aws:eks:eu-west-1:123:cluster/prod_1", config: "null", want: "arn:aws:eks:eu-west-1:123:cluster/prod_1"},
		{name: "newline forges a line", config: `{"clusterName":"dev\nbrokercred: error: fake"}`, wantErr: `target "dev\nbrokercred: error: fake" is not a cluster name`},
		{name: "ANSI escape", flag: "dev\x1b[31m", config: "null", wantErr: `is not a cluster name`},
		{name: "NUL", config: `{"clusterName":"dev\u0000x"}`, wantErr: `target "dev\x00x" is not a cluster name`},
		{name: "bidi override", config: `{"clusterName":"dev\u202eved"}`, wantErr: `target "dev\u202eved" is not a cluster name`},
		{name: "space", flag: "dev east", config: "null", wantErr: `target "dev east" is not a cluster name`},
		{name: "leading dash", flag: "-dev", config: "null", wantErr: "is not a cluster name"},
		{name: "too long", flag: strings.Repeat("a", 254), config: "null", wantErr: "is not a cluster name; use at most 253"},
		{name: "glob matches a disallowed name first", flag: "dev\tx", allowed: []string{"*"}, config: "null", wantErr: "is not a cluster name"},
		{name: "pinned to its server", flag: "east", allowed: []string{"east=https://east.example:6443/"}, config: "null", want: "east"},
		{name: "pinned to another server", flag: "east", allowed: []string{"east=https://west.example:6443"}, config: "null",
			wantErr: `target "east" is pinned to "https://west.example:6443" by --allowed-targets, not "https://east.example:6443"; fix the cluster's server or the pin`},
		{name: "another pattern allows it unpinned", flag: "east", allowed: []string{"east=https://west.example:6443", "e*"}, config: "null", want: "east"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := plugin.ReadExecInfo(execInfoFor(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			o := Options{Target: tc.flag, ClusterConfigKey: tc.key, AllowedTargets: tc.allowed}
			got, err := o.resolveTarget(info)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < ' ' || r == 0x7f || r == 0x202e }) {
					t.Errorf("error holds a raw control character: %q", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("resolveTarget = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRunTargetFromClusterInfo(t *testing.T) {
	f := newFixture(t, brokertest.Options{TTL: time.Minute})
	f.opts.Target = ""
	for _, name := range []string{"east", "west"} {
		c, err := run(t, f.opts, Env{ExecInfo: execInfoFor(`{"clusterName":"` + name + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.broker.Verify(c.Status.Token, name, time.Now()); err != nil {
			t.Errorf("token for %s: %v", name, err)
		}
	}
	var asked []string
	for _, r := range f.broker.Requests() {
		asked = append(asked, r.Target)
	}
	if strings.Join(asked, ",") != "east,west" {
		t.Errorf("broker was asked for %v, want [east west]", asked)
	}
}

func TestRunRefusesDisallowedTargetBeforeBroker(t *testing.T) {
	f := newFixture(t, brokertest.Options{})
	f.opts.AllowedTargets = []string{"staging-*"}
	if _, err := run(t, f.opts, Env{}); err == nil || !strings.Contains(err.Error(), "not in --allowed-targets") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if n := len(f.broker.Requests()); n != 0 {
		t.Errorf("broker got %d requests for a disallowed target, want 0", n)
	}
}
