package brokertest

import (
	"strings"
	"testing"
	"time"
)

func TestLeak(t *testing.T) {
	tok := PodToken("system:serviceaccount:argocd:x", time.Now().Add(time.Hour))
	sig := tok[strings.LastIndex(tok, ".")+1:]
	for _, tc := range []struct{ name, text, want string }{
		{"clean", "broker refused the identity", ""},
		{"whole", "token=" + tok, "a whole token"},
		{"fragment", "…" + sig[10:18] + "…", "the token signature fragment at offset 10"},
		{"seven characters are not enough", sig[3:10], ""},
	} {
		if got := Leak(tc.text, tok); got != tc.want {
			t.Errorf("%s: Leak = %q, want %q", tc.name, got, tc.want)
		}
	}
}
