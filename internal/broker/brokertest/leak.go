package brokertest

import (
	"fmt"
	"strings"
	"testing"
)

// Leak says how text holds token, whole or as any 8-character piece of its
// signature (its last dot-separated part), or "" when it holds neither. The
// answer never quotes the token, so a failing test can print it.
func Leak(text, token string) string {
	if token == "" {
		return ""
	}
	if strings.Contains(text, token) {
		return "a whole token"
	}
	sig := token[strings.LastIndex(token, ".")+1:]
	for i := 0; i+8 <= len(sig); i++ {
		if strings.Contains(text, sig[i:i+8]) {
			return fmt.Sprintf("the token signature fragment at offset %d", i)
		}
	}
	return ""
}

// NoLeak fails t, and goes on, for each of secrets that text holds whole or
// in part (see Leak), naming text by what. The failure never quotes a
// secret, nor text.
func NoLeak(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if leak := Leak(text, secret); leak != "" {
			t.Errorf("%s holds %s", what, leak)
		}
	}
}
