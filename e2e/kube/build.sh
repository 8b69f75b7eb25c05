#!/usr/bin/env bash
# build.sh builds one Kubernetes command (kube-apiserver or kubectl) of one
# release for the tests and prints its path.
#
#   ./build.sh                          kube-apiserver $KUBE_VERSION (default v1.34.1)
#   ./build.sh kubectl v1.37.2          kubectl of v1.37.2
#
# k8s.io/kubernetes points its staging modules (k8s.io/api, k8s.io/client-go,
# ...) at ./staging paths, so it cannot be built with `go install`. This script
# makes a scratch module per version that requires it and replaces every
# staging module its go.mod lists with the published v0.MINOR.PATCH version,
# then builds k8s.io/kubernetes/cmd/COMMAND into DIR/COMMAND-VERSION. That
# binary is kept, so later runs cost nothing; Go's build cache makes a rebuild
# after deleting it cheap too. testkit.Kubectls finds DIR/kubectl-v*.
#
#   BROKERCRED_E2E_DIR  DIR, where the scratch modules and binaries live
#                       (default $(go env GOCACHE)/../brokercred-e2e)
set -euo pipefail

command=${1:-kube-apiserver}
version=${2:-${KUBE_VERSION:-v1.34.1}}
case $command in
kube-apiserver | kubectl) ;;
*) echo "build.sh: unknown command $command (want kube-apiserver or kubectl)" >&2; exit 2 ;;
esac
base=${BROKERCRED_E2E_DIR:-$(go env GOCACHE)/../brokercred-e2e}
mkdir -p "$base"
base=$(cd "$base" && pwd)
bin="$base/$command-$version"
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
# The version stamp a release build sets (hack/lib/version.sh), so that
# `kubectl version` and /version tell the truth.
minor=${version#v1.}
ldflags=
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean"
done
tmp="$base/.$command-$version.tmp" # not matched by testkit's kubectl-v* while it is written
go build -ldflags "$ldflags" -o "$tmp" "k8s.io/kubernetes/cmd/$command" >&2
mv "$tmp" "$bin"
echo "$bin"
