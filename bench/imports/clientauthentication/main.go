// Command clientauthentication measures the start-up cost of importing
// client-go's ExecCredential types, which brokercred declares itself instead.
package main

import (
	"encoding/json"
	"os"

	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
)

func main() {
	b, _ := json.Marshal(clientauthv1.ExecCredential{})
	os.Stdout.Write(append(b, '\n'))
}
