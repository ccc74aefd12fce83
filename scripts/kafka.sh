#!/usr/bin/env bash
# A real Apache Kafka 4.3 broker in KRaft combined mode (broker + controller, one node), from Maven Central jars.
#
#   scripts/kafka.sh fetch          jars into $CACHE/kafka-4.3.1/libs (mvn dependency:copy-dependencies; cached)
#   scripts/kafka.sh start  [DIR]   configure + format DIR if new, start in the background, wait until ready
#   scripts/kafka.sh run    [DIR]   the same in the foreground (exec java): the pytest fixture drives this one
#   scripts/kafka.sh stop   [DIR]   SIGTERM (clean shutdown), SIGKILL after $BADGATEWAY_KAFKA_STOP_TIMEOUT s
#   scripts/kafka.sh status [DIR]   "running pid=… bootstrap=…" (exit 0) or "stopped" (exit 3)
#
# Environment:
#   BADGATEWAY_CACHE                   cache root (default ~/.cache/badgateway)
#   BADGATEWAY_KAFKA_PORT              PLAINTEXT listener on 127.0.0.1 (default 9092)
#   BADGATEWAY_KAFKA_CONTROLLER_PORT   CONTROLLER listener on 127.0.0.1 (default 9093)
#   BADGATEWAY_KAFKA_HEAP              JVM heap flags (default -Xmx512m -Xms512m)
#   BADGATEWAY_KAFKA_START_TIMEOUT     seconds `start` waits for readiness (default 60)
#
# DIR (default $CACHE/kafka-broker) holds server.properties, log4j2.properties, data/, broker.log, kafka.pid.
# Ports are fixed when DIR is first configured: the controller's endpoint is written into the formatted metadata
# log, so a restart of the same DIR reuses its server.properties and ignores the port variables.
set -euo pipefail

KAFKA_VERSION=4.3.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/kafka/pom.xml"
CACHE="${BADGATEWAY_CACHE:-$HOME/.cache/badgateway}"
HOME_DIR="$CACHE/kafka-$KAFKA_VERSION"
LIBS="$HOME_DIR/libs"
MARKER="$HOME_DIR/.fetched"
HEAP="${BADGATEWAY_KAFKA_HEAP:--Xmx512m -Xms512m}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

cmd_fetch() {
    # Fast path: the marker records the digest of the pom the jars came from.
    if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(pom_digest)" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (Maven is needed once to fetch the broker jars)"
    command -v java >/dev/null || die "java not found (Java 17+ runs the broker)"
    mkdir -p "$HOME_DIR"
    # Concurrent fetches (parallel test sessions, CI) wait for each other instead of interleaving.
    exec 9>"$HOME_DIR/.fetch.lock"
    flock 9
    if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(pom_digest)" ]]; then
        return 0
    fi
    local tmp="$HOME_DIR/libs.tmp.$$"
    rm -rf "$tmp"
    echo "kafka.sh: fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies" >&2
    mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >&2 \
        || { rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed"; }
    # Smoke test before declaring the cache good: both entry points load from this classpath.
    java -cp "$tmp/*" kafka.tools.StorageTool random-uuid >/dev/null \
        || { rm -rf "$tmp"; die "kafka.tools.StorageTool does not run from the fetched jars"; }
    java -cp "$tmp/*" kafka.Kafka --version >/dev/null \
        || { rm -rf "$tmp"; die "kafka.Kafka does not run from the fetched jars"; }
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    pom_digest >"$MARKER"
    echo "kafka.sh: $(ls "$LIBS" | wc -l) jars in $LIBS" >&2
}

broker_dir() { echo "${1:-$CACHE/kafka-broker}"; }

prop() {  # prop FILE KEY → value
    sed -n "s/^$2=//p" "$1" | tail -n1
}

write_config() {
    local dir="$1"
    local port="${BADGATEWAY_KAFKA_PORT:-9092}" cport="${BADGATEWAY_KAFKA_CONTROLLER_PORT:-9093}"
    [[ "$port" != "$cport" ]] || die "broker and controller ports must differ ($port)"
    mkdir -p "$dir/data"
    cat >"$dir/server.properties" <<EOF
# KRaft combined mode, one node: written by scripts/kafka.sh for tests and benchmarks.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
# One broker: every internal topic has a single replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests want a consumer group to form at once, not after the default 3 s.
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted broker cannot register until its old session expires (default 9 s).
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
EOF
    cat >"$dir/log4j2.properties" <<'EOF'
# Broker log to stdout, which scripts/kafka.sh appends to DIR/broker.log.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
# the full config dump (thousands of lines per start) hides the lines that matter
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
EOF
}

prepare() {  # prepare DIR: fetch, configure and format a new DIR; leave an existing one as it is
    local dir="$1"
    cmd_fetch
    command -v java >/dev/null || die "java not found (Java 17+ runs the broker)"
    [[ -f "$dir/server.properties" ]] || write_config "$dir"
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        local cluster_id
        cluster_id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)"
        java -cp "$LIBS/*" kafka.tools.StorageTool format --standalone \
            -t "$cluster_id" -c "$dir/server.properties" >>"$dir/broker.log" 2>&1 \
            || { tail -n 20 "$dir/broker.log" >&2; die "formatting $dir failed"; }
    fi
}

running_pid() {  # prints the pid if DIR's broker is alive
    local pidfile="$1/kafka.pid"
    [[ -f "$pidfile" ]] || return 1
    local pid
    pid="$(cat "$pidfile")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

cmd_run() {
    local dir
    dir="$(broker_dir "${1:-}")"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if pid="$(running_pid "$dir")"; then die "a broker already runs from $dir (pid $pid)"; fi
    prepare "$dir"
    echo $$ >"$dir/kafka.pid"
    # exec: this process becomes the JVM, so the caller's pid is the broker's pid (SIGTERM/SIGKILL reach it).
    # shellcheck disable=SC2086
    exec java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
    local dir
    dir="$(broker_dir "${1:-}")"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if pid="$(running_pid "$dir")"; then
        echo "already running pid=$pid bootstrap=$(bootstrap "$dir")"
        return 0
    fi
    prepare "$dir"
    local lines_before
    lines_before="$(wc -l <"$dir/broker.log" 2>/dev/null || echo 0)"
    rm -f "$dir/kafka.pid"
    # setsid: the broker outlives this shell and a Ctrl-C in it; `run` execs, so $! is the JVM's pid.
    setsid "$0" run "$dir" </dev/null >/dev/null 2>&1 &
    local pid=$! port timeout="${BADGATEWAY_KAFKA_START_TIMEOUT:-60}"
    port="$(bootstrap "$dir")"; port="${port##*:}"
    local deadline=$((SECONDS + timeout))
    # Ready = the listener answers and the broker logged that it finished starting (the port alone
    # accepts connections before the broker has caught up with its metadata).
    until port_open "$port" && tail -n +"$((lines_before + 1))" "$dir/broker.log" | grep -q "Kafka Server started"; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            tail -n 30 "$dir/broker.log" >&2 || true
            kill -0 "$pid" 2>/dev/null && die "broker in $dir not ready after ${timeout}s (log: $dir/broker.log)"
            die "broker in $dir exited during start (log: $dir/broker.log)"
        fi
        sleep 0.2
    done
    echo "running pid=$(cat "$dir/kafka.pid") bootstrap=$(bootstrap "$dir")"
}

bootstrap() {
    local listeners
    listeners="$(prop "$1/server.properties" advertised.listeners)"
    echo "${listeners#PLAINTEXT://}"
}

cmd_stop() {
    local dir pid
    dir="$(broker_dir "${1:-}")"
    if ! pid="$(running_pid "$dir")"; then
        echo "stopped"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + ${BADGATEWAY_KAFKA_STOP_TIMEOUT:-30}))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "kafka.sh: broker pid $pid ignored SIGTERM, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rm -f "$dir/kafka.pid"
    echo "stopped"
}

cmd_status() {
    local dir pid
    dir="$(broker_dir "${1:-}")"
    if pid="$(running_pid "$dir")"; then
        echo "running pid=$pid bootstrap=$(bootstrap "$dir") dir=$dir"
    else
        echo "stopped"
        return 3
    fi
}

case "${1:-}" in
    fetch) cmd_fetch ;;
    start) cmd_start "${2:-}" ;;
    run) cmd_run "${2:-}" ;;
    stop) cmd_stop "${2:-}" ;;
    status) cmd_status "${2:-}" ;;
    *) echo "usage: $0 fetch|start [DIR]|run [DIR]|stop [DIR]|status [DIR]" >&2; exit 2 ;;
esac
