#!/usr/bin/env bash
# build.sh builds kube-apiserver for the e2e/kube suite and prints its path.
#
# k8s.io/kubernetes points its staging modules (k8s.io/api, k8s.io/client-go,
# ...) at ./staging paths, so it cannot be built with `go install`. This script
# makes a scratch module that requires it and replaces every staging module its
# go.mod lists with the published v0.MINOR.PATCH version, then builds
# k8s.io/kubernetes/cmd/kube-apiserver. The binary is kept, so later runs cost
# nothing; Go's build cache makes a rebuild after `go clean` cheap too.
#
#   KUBE_VERSION      Kubernetes version (default v1.34.1)
#   BROKERCRED_E2E_DIR  where the scratch module and binary live
#                     (default $(go env GOCACHE)/../brokercred-e2e)
set -euo pipefail

version=${KUBE_VERSION:-v1.34.1}
base=${BROKERCRED_E2E_DIR:-$(go env GOCACHE)/../brokercred-e2e}
mkdir -p "$base"
base=$(cd "$base" && pwd)
bin="$base/kube-apiserver-$version"
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

staging_version="v0.${version#v1.}"
mod="$base/kube-$version"
mkdir -p "$mod"
cd "$mod"
export GONOSUMDB=k8s.io GOFLAGS="-mod=mod -buildvcs=false"

kube_gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
rm -f go.mod go.sum
go mod init brokercred-e2e-kube >/dev/null 2>&1
go mod edit -require "k8s.io/kubernetes@$version"
for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$kube_gomod"); do
	go mod edit -replace "$m=$m@$staging_version"
done
go build -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$bin.tmp" "$bin"
echo "$bin"
