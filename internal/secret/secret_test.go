package secret

import (
	"bytes"
	"strings"
	"testing"
)

const token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"

func TestScrub(t *testing.T) {
	var s Set
	s.Add(token)
	s.Add("hunter2-client-secret")
	s.Add("short") // below minPiece: ignored
	for _, tc := range []struct{ name, in, want string }{
		{"nothing secret", "broker refused the identity \"sa\" (HTTP 403)", "broker refused the identity \"sa\" (HTTP 403)"},
		{"whole token", "got " + token + " back", "got [redacted] back"},
		{"a piece of the signature", "redirected to https://" + token[50:62] + ".evil.example/", "redirected to https://[redacted].evil.example/"},
		{"two secrets side by side", token + "hunter2-client-secret", "[redacted]"},
		{"quoted with escapes around", `"` + token[:20] + `"`, `"[redacted]"`},
		{"seven bytes are no leak", "x" + token[30:37] + "x", "x" + token[30:37] + "x"},
		{"short values are not secrets", "a short word", "a short word"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Scrub(tc.in); got != tc.want {
				t.Errorf("Scrub = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNilAndEmptySets(t *testing.T) {
	var nilSet *Set
	nilSet.Add(token) // must not panic
	if got := nilSet.Scrub(token); got != token {
		t.Errorf("nil Set changed the text")
	}
	if got := new(Set).Scrub(token); got != token {
		t.Errorf("empty Set changed the text")
	}
}

func TestWriterScrubsEveryWrite(t *testing.T) {
	var s Set
	s.Add(token)
	var out bytes.Buffer
	w := Writer{W: &out, Set: &s}
	line := "level=DEBUG msg=\"broker answered\" token=" + token + "\n"
	n, err := w.Write([]byte(line))
	if err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v; want %d, nil (the caller's bytes, all taken)", n, err, len(line))
	}
	if strings.Contains(out.String(), token[40:48]) || !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("Writer passed on %q", out.String())
	}
}
