// Package secret keeps the secrets of one call (the pod token, a client
// secret, a broker session token, the issued token) out of everything
// brokercred prints: every error and log line passes through a Set before it
// reaches stderr.
package secret

import (
	"io"
	"strings"
	"sync"
)

// minPiece is the shortest run of a secret that counts as a leak. Shorter
// runs occur in ordinary text by chance.
const minPiece = 8

// redacted replaces every leaked run.
const redacted = "[redacted]"

// Set is the secrets in play in one call. The zero value holds none and is
// ready to use; it is safe for concurrent use.
type Set struct {
	mu      sync.Mutex
	secrets []string
}

// Add puts s in the set. Values shorter than minPiece are ignored: nothing
// could tell them from ordinary text. Adding to a nil Set does nothing.
func (s *Set) Add(secret string) {
	if s == nil || len(secret) < minPiece {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, secret)
}

// Within reports whether text holds any secret of the set whole. A nil Set
// holds none.
func (s *Set) Within(text string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, secret := range s.secrets {
		if strings.Contains(text, secret) {
			return true
		}
	}
	return false
}

// Scrub returns text with every run of minPiece or more bytes of any secret
// in the set replaced by "[redacted]". A nil Set returns text unchanged.
func (s *Set) Scrub(text string) string {
	if s == nil {
		return text
	}
	s.mu.Lock()
	secrets := s.secrets
	s.mu.Unlock()
	leaked := make([]bool, len(text))
	any := false
	for _, secret := range secrets {
		any = markPieces(text, secret, leaked) || any
	}
	if !any {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		if !leaked[i] {
			b.WriteByte(text[i])
			continue
		}
		b.WriteString(redacted)
		for i+1 < len(text) && leaked[i+1] {
			i++
		}
	}
	return b.String()
}

// markPieces marks in leaked every byte of text covered by a minPiece-long
// piece of secret, and reports whether it marked any.
func markPieces(text, secret string, leaked []bool) bool {
	found := false
	for i := 0; i+minPiece <= len(secret); i++ {
		piece := secret[i : i+minPiece]
		for from := 0; ; {
			j := strings.Index(text[from:], piece)
			if j < 0 {
				break
			}
			for k := from + j; k < from+j+minPiece; k++ {
				leaked[k] = true
			}
			found = true
			from += j + 1
		}
	}
	return found
}

// Writer scrubs each Write before passing it on. A log handler writes one
// record per Write, so a secret is never split across two writes.
type Writer struct {
	W   io.Writer
	Set *Set
}

func (w Writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.W, w.Set.Scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
