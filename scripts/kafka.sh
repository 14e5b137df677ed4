#!/usr/bin/env bash
# Apache Kafka, natively: one KRaft broker+controller in one JVM, at the version of
# deploy/versions.env (compose's apache/kafka tag), with the settings compose gives the image.
#
#   scripts/kafka.sh fetch
#       resolves the broker's jars (deploy/kafka/pom.xml) into the cache, once; later calls
#       use the cache and need no network
#   scripts/kafka.sh start DIR [--port P] [--controller-port C] [--listener PROTOCOL:PORT]...
#                              [--properties FILE] [--scram USER=PASSWORD]...
#       P: the plaintext listener (default 9092; 0: a free port); C: the controller's (default
#       a free port); --listener adds one on 127.0.0.1 (SSL or SASL_SSL: their keystore and
#       SASL settings come with --properties)
#       formats DIR on its first start (KRaft metadata, SCRAM-SHA-512 users), starts the broker
#       detached (pid in DIR/kafka.pid, logs in DIR/logs/), waits until it has started and
#       accepts connections, prints its bootstrap address. A second start on the same DIR keeps
#       its data. FILE's lines are appended to the generated server.properties and so win
#       (extra listeners for TLS or SASL, say)
#   scripts/kafka.sh run DIR [same options]
#       the same broker in the foreground (exec: the pid is the JVM's), for a supervisor;
#       scripts/kafka.sh wait DIR then returns once it has started
#   scripts/kafka.sh stop DIR
#       SIGTERM (a clean shutdown), SIGKILL after FLEET_KAFKA_STOP_TIMEOUT seconds (default 60)
#   scripts/kafka.sh classpath | version
#
# Settings: FLEET_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/fleetpulse), FLEET_KAFKA_HEAP
# (default 512m: -Xmx; -Xms is 128m), KAFKA_TOPIC_PARTITIONS (the broker's num.partitions, as
# compose sets it; default 6), FLEET_KAFKA_START_TIMEOUT (seconds, default 90). Not KAFKA_*
# names of their own: the services pass every unknown KAFKA_* variable to librdkafka.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/versions.env
. "$REPO/deploy/versions.env"
CACHE=${FLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetpulse}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs

die() { printf 'kafka.sh: %s\n' "$*" >&2; exit 1; }

# port_value NAME VALUE: a TCP port (0: a free one, where the caller allows it).
port_value() {
  [[ $2 =~ ^[0-9]{1,5}$ && $2 -le 65535 ]] || die "invalid value '$2' for $1: expected a port from 0 to 65535"
}

# Settings are checked before anything starts: one line naming the bad value.
[[ ${FLEET_KAFKA_HEAP:-512m} =~ ^[1-9][0-9]*[mMgG]$ ]] \
  || die "invalid value '$FLEET_KAFKA_HEAP' for FLEET_KAFKA_HEAP: expected a size such as 512m or 1g"
for setting in FLEET_KAFKA_START_TIMEOUT FLEET_KAFKA_STOP_TIMEOUT KAFKA_TOPIC_PARTITIONS; do
  value=${!setting:-1}
  [[ $value =~ ^[1-9][0-9]{0,5}$ ]] || die "invalid value '$value' for $setting: expected a whole number above 0"
done
unset setting value

# fetch: the jars, through Maven's own resolution and local repository; the marker is written
# last, so an interrupted fetch is redone.
fetch() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn not found: Maven (and Java 17) fetch and run the broker"
  printf 'kafka.sh: fetching Apache Kafka %s into %s\n' "$KAFKA_VERSION" "$LIBS" >&2
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -f "$REPO/deploy/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" >&2 \
    || die "could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar missing after the fetch"
  touch "$LIBS/.complete"
}

classpath() { fetch; printf '%s/*\n' "$LIBS"; }

# java_cmd DIR MAIN ARGS...: NUL-separated, the JVM as Kafka's kafka-run-class.sh starts it.
java_cmd() {
  local dir=$1
  shift
  printf '%s\0' java "-Xms128m" "-Xmx${FLEET_KAFKA_HEAP:-512m}" -server -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$REPO/deploy/kafka/log4j2.properties" \
    "-Dkafka.logs.dir=$dir/logs" -cp "$LIBS/*" "$@"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid_of() {
  local dir=$1 pid
  [ -s "$dir/kafka.pid" ] || return 1
  pid=$(<"$dir/kafka.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  # The pid must still be this broker's JVM (pids are recycled).
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $dir/server.properties" || return 1
  printf '%s\n' "$pid"
}

# prepare DIR [OPTIONS]: the cache, DIR/server.properties and, on a first start, the formatted
# storage; sets DIR for the caller.
prepare() {
  [ $# -ge 1 ] || die "usage: kafka.sh start|run DIR [--port P] [--controller-port C] [--listener PROTOCOL:PORT] [--properties FILE] [--scram USER=PASSWORD]"
  local dir=$1 port='' controller='' extra='' scram=() listeners='' advertised=
  shift
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value"
    case $1 in
      --port) port_value --port "$2"; port=$2; shift 2 ;;
      --controller-port) port_value --controller-port "$2"; controller=$2; shift 2 ;;
      --properties) extra=$2; shift 2 ;;
      --listener)
        [[ $2 =~ ^(SSL|SASL_SSL|SASL_PLAINTEXT):[0-9]+$ ]] || die "invalid value '$2' for --listener: expected PROTOCOL:PORT (SSL, SASL_SSL or SASL_PLAINTEXT)"
        port_value --listener "${2#*:}"
        listeners+=",${2%%:*}://127.0.0.1:${2#*:}" advertised+=",${2%%:*}://127.0.0.1:${2#*:}"
        shift 2 ;;
      # Quoted: a password may hold "," or "]".
      --scram) scram+=(--add-scram "SCRAM-SHA-512=[name=\"${2%%=*}\",password=\"${2#*=}\"]"); shift 2 ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  command -v java >/dev/null || die "java not found: the broker needs Java 17 or newer"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  fetch
  # Ports are kept across restarts of the same folder: clients and stored metadata name them.
  local saved_port='' saved_controller=''
  [ ! -s "$dir/ports" ] || read -r saved_port saved_controller <"$dir/ports"
  # 0: any free port, the one this folder had if it had one.
  [ "$port" != 0 ] || port=${saved_port:-$(free_port)}
  port=${port:-${saved_port:-9092}}
  controller=${controller:-${saved_controller:-$(free_port)}}
  printf '%s %s\n' "$port" "$controller" >"$dir/ports"
  mkdir -p "$dir/logs" "$dir/data"
  # compose's apache/kafka settings (docker-compose.yml, service kafka), on loopback.
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller$listeners
advertised.listeners=PLAINTEXT://127.0.0.1:$port$advertised
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=${KAFKA_TOPIC_PARTITIONS:-6}
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  if [ -n "$extra" ]; then
    [ -r "$extra" ] || die "cannot read --properties file '$extra'"
    { printf '# from %s\n' "$extra"; cat "$extra"; } >>"$dir/server.properties"
  fi
  if [ ! -f "$dir/data/meta.properties" ]; then
    # A cluster id: 16 random bytes, URL-safe base64. Not one that starts with "-", which the
    # storage tool would take for an option (Kafka's own Uuid.randomUuid skips those too).
    local id=-
    while [[ $id == -* ]]; do
      id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    local cmd=()
    mapfile -d '' cmd < <(java_cmd "$dir" kafka.tools.StorageTool format -t "$id" \
      -c "$dir/server.properties" "${scram[@]}")
    "${cmd[@]}" >"$dir/logs/format.log" 2>&1 || { cat "$dir/logs/format.log" >&2; die "formatting $dir failed"; }
  fi
  DIR=$dir
}

# not_running DIR: fails when a broker already runs on DIR (its configuration is not touched).
not_running() {
  local dir pid
  dir=$(cd "$1" 2>/dev/null && pwd) || return 0
  if pid=$(pid_of "$dir"); then die "a broker already runs on $dir (pid $pid)"; fi
}

# launch [PREFIX...]: notes the log's length (so that `wait` sees this run's "started", not the
# last one's), records this process's pid and becomes the JVM (run through PREFIX, e.g. setsid).
launch() {
  ( (wc -l <"$DIR/logs/server.log") 2>/dev/null || echo 0) >"$DIR/start.mark"
  echo "$BASHPID" >"$DIR/kafka.pid"
  local cmd=()
  mapfile -d '' cmd < <(java_cmd "$DIR" kafka.Kafka "$DIR/server.properties")
  exec "$@" "${cmd[@]}"
}

# run DIR [OPTIONS]: the broker in the foreground (for a supervisor: scripts/local-up.sh).
run() {
  not_running "${1:-}"
  prepare "$@"
  launch
}

# wait_started DIR [PID]: (after removing DIR/start.mark, then `run`) until this run has started
# and its plaintext port accepts a connection; fails early if PID (default: DIR's broker) exits.
wait_started() {
  local dir=$1 pid=${2:-} port lines deadline=$(($(date +%s) + ${FLEET_KAFKA_START_TIMEOUT:-90}))
  # `launch` writes the mark once the folder is prepared (ports chosen, storage formatted).
  until [ -s "$dir/start.mark" ]; do
    [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || die "the broker on $dir exited before it started"
    [ "$(date +%s)" -lt "$deadline" ] || die "the broker on $dir was not prepared within ${FLEET_KAFKA_START_TIMEOUT:-90} s"
    sleep 0.05
  done
  read -r port _ <"$dir/ports"
  lines=$(<"$dir/start.mark")
  [ -n "$pid" ] || pid=$(<"$dir/kafka.pid")
  until tail -n +"$((lines + 1))" "$dir/logs/server.log" 2>/dev/null | grep -q 'Kafka Server started' \
    && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 2>/dev/null || true
      die "the broker on $dir exited during start"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "the broker on $dir did not start within ${FLEET_KAFKA_START_TIMEOUT:-90} s (logs in $dir/logs)"
    sleep 0.2
  done
  printf '127.0.0.1:%s\n' "$port"
}

# start DIR [OPTIONS]: prepared here (errors come at once), launched detached in a session of
# its own, then `wait_started`.
start() {
  not_running "${1:-}"
  prepare "$@"
  rm -f "$DIR/start.mark"
  (launch setsid) >>"$DIR/logs/stdout.log" 2>&1 </dev/null &
  wait_started "$DIR" $!
}

stop() {
  [ $# -eq 1 ] || die "usage: kafka.sh stop DIR"
  local dir pid
  dir=$(cd "$1" 2>/dev/null && pwd) || return 0
  pid=$(pid_of "$dir") || { rm -f "$dir/kafka.pid"; return 0; }
  kill -TERM "$pid"
  local deadline=$(($(date +%s) + ${FLEET_KAFKA_STOP_TIMEOUT:-60}))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf 'kafka.sh: broker %s did not stop in time, killing it\n' "$pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  rm -f "$dir/kafka.pid"
}

case ${1:-} in
  fetch) fetch ;;
  classpath) classpath ;;
  version) printf '%s\n' "$KAFKA_VERSION" ;;
  start) shift; start "$@" ;;
  run) shift; run "$@" ;;
  wait) shift; wait_started "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: kafka.sh fetch | start DIR [...] | run DIR [...] | wait DIR | stop DIR | classpath | version" ;;
esac
