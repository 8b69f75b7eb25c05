package cache

import (
	"bytes"
	"encoding/json"
	"maps"
	"regexp"
	"testing"
)

// reasonRE is every reason decodeEntry may give: fixed text and a version
// number, never anything else read from the file.
var reasonRE = regexp.MustCompile(`^(entry corrupt|entry unreadable|entry incomplete|entry has format -?\d+, want \d+)$`)

// FuzzDecodeEntry feeds arbitrary files to the entry decoder: it must not
// panic, must accept only one well-formed JSON entry of the current format
// with a token and an expiry, must explain a refusal without quoting the
// file, and what it accepts must survive a write and a read unchanged.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`{"version":2,"name":"ab","label":{"target":"dev"},"token":"t","expiry":"2030-01-01T00:00:00Z","issued":"2029-12-31T23:59:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, reason := decodeEntry(bytes.NewReader(data))
		if reason != "" {
			if !reasonRE.MatchString(reason) {
				t.Fatalf("reason %q is not one of the fixed forms", reason)
			}
			return
		}
		if e.Version != formatVersion || e.Token == "" || e.Expiry.IsZero() {
			t.Fatalf("accepted an entry of version %d, token length %d, zero expiry %v", e.Version, len(e.Token), e.Expiry.IsZero())
		}
		if !json.Valid(data) {
			t.Fatalf("accepted a file that is not one well-formed JSON value")
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode an accepted entry: %v", err)
		}
		e2, reason := decodeEntry(bytes.NewReader(again))
		if reason != "" {
			t.Fatalf("a re-encoded entry is refused: %s", reason)
		}
		if e2.Name != e.Name || !maps.Equal(e2.Label, e.Label) || e2.Token != e.Token || !e2.Expiry.Equal(e.Expiry) || !e2.Issued.Equal(e.Issued) {
			t.Fatalf("entry changed across a write and a read")
		}
	})
}
