// Package caller names the client process a credential call serves, so
// that the token cache can tell a client that comes back for a token it was
// already given (its API server refused it) from a new client.
//
// A client is its parent process as one program: its process id, its start
// time and its executable (where the system says them: Linux's /proc), and
// the exec configuration it ran brokercred with (arguments, brokercred's
// environment, client-go's KUBERNETES_EXEC_INFO). So a reused process id, a
// program that execs another under the same id (the Google Cloud SDK's
// kubectl dispatcher execs kubectl.1.NN) and a second exec authenticator in
// one process (client-go keeps one per exec configuration and cluster) are
// each a new client, and never look like a refusal.
package caller

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Name is the client of a call: brokercred's parent process ppid, as
// brokercred was started (args, the environment environ, client-go's
// execInfo). It is a short hex string, safe in a file name, that holds no
// secret; empty when ppid is 0 or 1 (a container's entrypoint, or an orphan
// adopted by init: no client that holds a credential).
func Name(ppid int, args, environ []string, execInfo string) string {
	if ppid <= 1 {
		return ""
	}
	h := sha256.New()
	for _, part := range []string{strconv.Itoa(ppid), startTime(ppid), executable(ppid), execInfo} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	for _, a := range args {
		h.Write([]byte(a))
		h.Write([]byte{0})
	}
	for _, kv := range environ {
		if strings.HasPrefix(kv, "BROKERCRED_") {
			h.Write([]byte(kv))
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
