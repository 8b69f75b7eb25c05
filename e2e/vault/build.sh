#!/usr/bin/env bash
# build.sh builds HashiCorp Vault of one release for the tests and prints its
# path.
#
#   ./build.sh                  Vault $VAULT_VERSION (default v1.21.0)
#   ./build.sh --path           where that binary is or will be; builds nothing
#
# github.com/hashicorp/vault builds from the Go module proxy in a scratch
# module that requires it: an exact version is served (the proxy refuses
# @latest for it). The binary goes to DIR/vault-VERSION/vault and is kept, so
# later runs cost nothing. A cold build took from 18 minutes to two hours on a
# shared two-core machine, and leaves a large module cache; .ci/e2e runs it only
# when time allows. With the build cache kept, a rebuild takes under a minute.
#
#   BROKERCRED_E2E_DIR  DIR, where the scratch module and the binary live
#                       (default $(go env GOCACHE)/../brokercred-e2e)
set -euo pipefail

path_only=
if [[ ${1:-} == --path ]]; then
	path_only=1
	shift
fi
version=${1:-${VAULT_VERSION:-v1.21.0}}
base=${BROKERCRED_E2E_DIR:-$(go env GOCACHE)/../brokercred-e2e}
mkdir -p "$base"
base=$(cd "$base" && pwd)
mod="$base/vault-$version"
bin="$mod/vault"
if [[ -n $path_only || -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$mod"
cd "$mod"
export GOFLAGS="-mod=mod -buildvcs=false"
if [[ ! -f go.mod ]]; then
	go mod init brokercred-e2e-vault >/dev/null 2>&1
fi
# go get lists hundreds of modules; its log stays beside go.mod, shown on failure.
if ! go get "github.com/hashicorp/vault@$version" >get.log 2>&1; then
	tail -n 20 get.log >&2
	exit 1
fi
tmp="$mod/.vault.tmp"
CGO_ENABLED=0 go build -o "$tmp" github.com/hashicorp/vault >&2
mv "$tmp" "$bin"
echo "$bin"
