#!/usr/bin/env bash
# build.sh builds Dex (github.com/dexidp/dex/cmd/dex) at the version this
# module's go.mod pins, keeps it under DIR/dex-VERSION, and prints its path.
# e2e/dex's and e2e/argocd's TestMain both run it, so Dex is built once per
# version on a machine.
#
#   ./build.sh            Dex at the pinned version
#   ./build.sh VERSION    the same, after checking VERSION is the pin
#
# Dex's go.mod replaces github.com/dexidp/dex/api/v2 with ./api/v2, so
# `go install github.com/dexidp/dex/cmd/dex@VERSION` refuses it. It is built
# from this module instead, whose go.mod requires it (the tool directive) and
# the published api/v2. Only the sqlite3 storage needs cgo; the tests use the
# memory storage, so the build is CGO_ENABLED=0.
#
#   BROKERCRED_E2E_DIR  DIR, where the binaries live
#                       (default $(go env GOCACHE)/../brokercred-e2e)
set -euo pipefail

cd "$(dirname "$0")"
pinned=$(go list -m -f '{{.Version}}' github.com/dexidp/dex)
version=${1:-$pinned}
if [[ $version != "$pinned" ]]; then
	echo "build.sh: e2e/dex/go.mod pins Dex $pinned, not $version; change the pin with: cd e2e/dex && go get github.com/dexidp/dex@$version" >&2
	exit 2
fi
base=${BROKERCRED_E2E_DIR:-$(go env GOCACHE)/../brokercred-e2e}
mkdir -p "$base"
base=$(cd "$base" && pwd)
bin="$base/dex-$version"
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi
tmp=$(mktemp "$base/.dex-$version.XXXXXX") # a second build at once writes its own
trap 'rm -f "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp" github.com/dexidp/dex/cmd/dex >&2
mv "$tmp" "$bin"
echo "$bin"
