package broker

import (
	"net/http"
	"net/url"
	"testing"
)

// TestPlainHTTPNeverUsesAProxy checks the transport's proxy function itself:
// Go never proxies loopback addresses anyway, so a request through the
// transport could not show a proxy function that would proxy them.
func TestPlainHTTPNeverUsesAProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://proxy.example:3128")
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	t.Setenv("NO_PROXY", "")
	plain, err := newTransport("", "http")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Proxy != nil {
		t.Error("the transport of an http:// broker has a proxy function; it must have none")
	}
	tls, err := newTransport("", "https")
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{URL: &url.URL{Scheme: "https", Host: "broker.example"}}
	if tls.Proxy == nil {
		t.Fatal("the transport of an https broker ignores the proxy environment; want it honoured")
	}
	if _, err := tls.Proxy(req); err != nil {
		t.Fatal(err)
	}
}
