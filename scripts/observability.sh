#!/usr/bin/env bash
# The observability stack compose runs, built natively from each program's Go module at the
# version of deploy/versions.env, into a cache outside the repository (a second run needs no
# network and no compiler).
#
#   scripts/observability.sh build [PROGRAM...]
#       builds what is missing (all by default) and says how long each took; PROGRAM is one of
#       prometheus promtool alertmanager amtool mailpit jaeger
#   scripts/observability.sh path PROGRAM
#       prints the binary's path, building it first if needed
#   scripts/observability.sh versions
#       each program's pinned version and whether it is built
#
# prometheus/promtool, alertmanager/amtool and mailpit are `go install MODULE/cmd/X@VERSION`
# (their own go.mod and go.sum pin their dependencies; the checksum database verifies them).
# Jaeger cannot be `go install`ed (replace directives in its go.mod), so deploy/jaeger/go.mod
# pins it and its dependencies as a Go tool and it is built from there. Versions are stamped
# with -ldflags as their release builds do, so `--version` and /api/v1/status/buildinfo say
# what runs. First build on 2 cores from empty Go caches: 7 min 48 s (in minutes: Prometheus 4, Jaeger
# 2.7, the rest 1), downloads included.
#
# Settings: FLEET_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/fleetpulse).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/versions.env
. "$REPO/deploy/versions.env"
CACHE=${FLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetpulse}/go

die() { printf 'observability.sh: %s\n' "$*" >&2; exit 1; }

PROGRAMS=(prometheus promtool alertmanager amtool mailpit jaeger)

# The Go module version of a Prometheus 3 release: 3.16.0 is v0.316.0.
prometheus_module() {
  local major minor patch
  IFS=. read -r major minor patch <<<"$PROMETHEUS_VERSION"
  printf 'v0.%d%02d.%d' "$major" "$minor" "$patch"
}

# version PROGRAM: the pinned release it is built from.
version() {
  case $1 in
    prometheus | promtool) echo "$PROMETHEUS_VERSION" ;;
    alertmanager | amtool) echo "$ALERTMANAGER_VERSION" ;;
    mailpit) echo "$MAILPIT_VERSION" ;;
    jaeger) echo "$JAEGER_VERSION" ;;
    *) die "unknown program '$1': expected one of ${PROGRAMS[*]}" ;;
  esac
}

binary() { printf '%s/%s-%s/%s\n' "$CACHE" "$1" "$(version "$1")" "$1"; }

# The flags the projects' own release builds set (promu for Prometheus' projects, Jaeger's
# BuildInfo.mk, Mailpit's release workflow), so the binaries report their version.
ldflags() {
  local date common=github.com/prometheus/common/version
  date=$(date -u +%Y%m%d-%H:%M:%S)
  case $1 in
    prometheus | promtool)
      echo "-X $common.Version=$PROMETHEUS_VERSION -X $common.Revision=$(prometheus_module)" \
        "-X $common.Branch=go-module -X $common.BuildUser=fleetpulse -X $common.BuildDate=$date" ;;
    alertmanager | amtool)
      echo "-X $common.Version=$ALERTMANAGER_VERSION -X $common.Revision=v$ALERTMANAGER_VERSION" \
        "-X $common.Branch=go-module -X $common.BuildUser=fleetpulse -X $common.BuildDate=$date" ;;
    mailpit) echo "-X github.com/axllent/mailpit/config.Version=v$MAILPIT_VERSION" ;;
    jaeger)
      local v=github.com/jaegertracing/jaeger/internal/version
      echo "-X $v.latestVersion=v$JAEGER_VERSION -X $v.commitSHA=v$JAEGER_MODULE_VERSION -X $v.date=$date" ;;
  esac
}

# The module deploy/jaeger/go.mod pins is the release of JAEGER_VERSION: its changelog says so
# ("v1.76.0 / v2.13.0").
jaeger_release_matches() {
  local dir
  dir=$(cd "$REPO/deploy/jaeger" && go list -m -f '{{.Dir}}' github.com/jaegertracing/jaeger) || return 1
  grep -q "^v$JAEGER_MODULE_VERSION / v$JAEGER_VERSION " "$dir/CHANGELOG.md" ||
    die "the changelog of github.com/jaegertracing/jaeger v$JAEGER_MODULE_VERSION names no v$JAEGER_VERSION: fix JAEGER_VERSION or JAEGER_MODULE_VERSION"
}

# build_one PROGRAM: into a scratch folder first, moved into place when complete, so an
# interrupted build is redone rather than half used.
build_one() {
  local program=$1 target scratch started
  [[ " ${PROGRAMS[*]} " == *" $program "* ]] || die "unknown program '$program': expected one of ${PROGRAMS[*]}"
  target=$(binary "$program")
  [ -x "$target" ] && return 0
  command -v go >/dev/null || die "go not found: Go builds the observability stack"
  started=$(date +%s)
  printf 'observability.sh: building %s %s (first time only)\n' "$program" "$(version "$program")" >&2
  mkdir -p "$(dirname "$target")"
  scratch=$(mktemp -d "$(dirname "$target")/.build.XXXXXX")
  local flags
  flags=$(ldflags "$program")
  case $program in
    prometheus | promtool)
      GOBIN=$scratch go install -trimpath -ldflags "$flags" \
        "github.com/prometheus/prometheus/cmd/$program@$(prometheus_module)" ;;
    alertmanager | amtool)
      GOBIN=$scratch go install -trimpath -ldflags "$flags" \
        "github.com/prometheus/alertmanager/cmd/$program@v$ALERTMANAGER_VERSION" ;;
    mailpit)
      GOBIN=$scratch go install -trimpath -ldflags "$flags" \
        "github.com/axllent/mailpit@v$MAILPIT_VERSION" ;;
    jaeger)
      (cd "$REPO/deploy/jaeger" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "$flags" \
        -o "$scratch/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger) && jaeger_release_matches ;;
  esac || { rm -rf "$scratch"; die "could not build $program $(version "$program")"; }
  [ -x "$scratch/$program" ] || { rm -rf "$scratch"; die "$program missing after its build"; }
  mv "$scratch/$program" "$target"
  rm -rf "$scratch"
  printf 'observability.sh: built %s in %d s\n' "$target" $(($(date +%s) - started)) >&2
}

case ${1:-} in
  build)
    shift
    [ $# -gt 0 ] || set -- "${PROGRAMS[@]}"
    for program in "$@"; do build_one "$program"; done ;;
  path)
    [ $# -eq 2 ] || die "usage: observability.sh path PROGRAM"
    build_one "$2"
    binary "$2" ;;
  versions)
    for program in "${PROGRAMS[@]}"; do
      state=missing
      [ -x "$(binary "$program")" ] && state=built
      printf '%-13s %-8s %s\n' "$program" "$(version "$program")" "$state"
    done ;;
  *) die "usage: observability.sh build [PROGRAM...] | path PROGRAM | versions" ;;
esac
