#!/usr/bin/env bash
# Start/stop the local servers the service needs, on loopback only:
#   Redis (Celery broker)            127.0.0.1:6379
#   MongoDB-wire server (storage)    127.0.0.1:27017  -- mongod if on PATH, else FerretDB (SQLite)
#
# Usage: scripts/services.sh start|stop [redis|mongo ...]|status|build-ferretdb
#
# start is idempotent: a port that already answers is left alone. Processes this script
# launches get a pid file under var/run/; stop only ever touches those pids.
# If SERVICES_STARTED_FILE is set, start appends the names it launched to that file, so a
# caller (.ci/run) can stop exactly what it started and nothing that was running before.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$REPO/var"
RUN="$VAR/run"
LOG="$VAR/log"
PY="${SERVICES_PYTHON:-$REPO/.venv/bin/python}"
TIMEOUT="${SERVICES_TIMEOUT:-60}"
REDIS_HOST=127.0.0.1
REDIS_PORT="${REDIS_PORT:-6379}"
MONGO_HOST=127.0.0.1
MONGO_PORT="${MONGO_PORT:-27017}"
FERRETDB_VERSION=v1.24.2
FERRETDB_MODULE=github.com/FerretDB/FerretDB

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- probes

redis_up() {
    # Speak RESP over bash's /dev/tcp so the probe works even before redis-cli is installed.
    local reply=""
    { exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || true
    exec 3<&- 3>&-
    [[ "$reply" == "+PONG"* ]]
}

mongo_up() {
    [[ -x "$PY" ]] || die "$PY not found: run 'make install' first"
    "$PY" - "$MONGO_HOST" "$MONGO_PORT" <<'EOF' >/dev/null 2>&1
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1], int(sys.argv[2]), serverSelectionTimeoutMS=1500, connectTimeoutMS=1500)
sys.exit(0 if c.admin.command("ping").get("ok") == 1 else 1)
EOF
}

port_busy() {
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    exec 3<&- 3>&-
    return 0
}

# wait_for NAME PROBE PIDFILE LOGFILE
wait_for() {
    local name=$1 probe=$2 pidfile=$3 logfile=$4 deadline=$((SECONDS + TIMEOUT))
    until "$probe"; do
        if [[ -f "$pidfile" ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            log "$name exited during startup; last log lines:"
            tail -n 30 "$logfile" >&2 || true
            rm -f "$pidfile"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "$name did not answer within ${TIMEOUT}s; last log lines:"
            tail -n 30 "$logfile" >&2 || true
            exit 1
        fi
        sleep 0.3
    done
    log "$name is up"
}

record_started() {
    if [[ -n "${SERVICES_STARTED_FILE:-}" ]]; then echo "$1" >>"$SERVICES_STARTED_FILE"; fi
}

# ---------------------------------------------------------------- redis

ensure_redis_server() {
    command -v redis-server >/dev/null && return 0
    command -v apt-get >/dev/null || die "redis-server not found and apt-get unavailable; install Redis"
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "redis-server not found; install Debian's redis-server (needs root)"
        sudo="sudo"
    fi
    log "installing Debian's redis-server (apt-get)"
    $sudo apt-get update -qq
    # policy-rc.d-less images may try to start the packaged service; we start our own anyway.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    command -v redis-server >/dev/null || die "redis-server still not found after apt-get install"
}

start_redis() {
    if redis_up; then
        log "redis already answers on $REDIS_HOST:$REDIS_PORT; leaving it"
        return 0
    fi
    port_busy "$REDIS_PORT" && die "port $REDIS_PORT is taken by something that is not Redis"
    ensure_redis_server
    # the package's own service may have started during apt-get install (no policy-rc.d)
    if redis_up; then
        log "redis answers on $REDIS_HOST:$REDIS_PORT after install (packaged service); leaving it"
        return 0
    fi
    mkdir -p "$VAR/redis"
    log "starting redis-server on $REDIS_HOST:$REDIS_PORT (data: var/redis, log: var/log/redis.log)"
    # appendonly: queued Celery messages survive a broker restart.
    redis-server --bind "$REDIS_HOST" --port "$REDIS_PORT" --protected-mode yes \
        --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$LOG/redis.log" \
        --dir "$VAR/redis" --appendonly yes --appendfsync everysec
    # with --daemonize the pid file appears shortly after the parent returns
    local i
    for i in $(seq 50); do [[ -s "$RUN/redis.pid" ]] && break; sleep 0.1; done
    wait_for redis redis_up "$RUN/redis.pid" "$LOG/redis.log"
    record_started redis
}

# ---------------------------------------------------------------- ferretdb

go_bin() {
    if command -v go >/dev/null; then command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
    else return 1
    fi
}

ferretdb_target() {
    local go
    go=$(go_bin) || die "FerretDB is not built and Go is not installed"
    echo "$("$go" env GOPATH | cut -d: -f1)/bin/ferretdb"
}

ferretdb_works() { [[ -x "$1" ]] && "$1" --version 2>/dev/null | grep -q "^version: $FERRETDB_VERSION\$"; }

find_ferretdb() {
    local cand go gopath
    for cand in "${FERRETDB_BIN:-}" "$(command -v ferretdb || true)"; do
        if [[ -n "$cand" ]] && ferretdb_works "$cand"; then echo "$cand"; return 0; fi
    done
    if go=$(go_bin); then
        gopath=$("$go" env GOPATH | cut -d: -f1)
        if ferretdb_works "$gopath/bin/ferretdb"; then echo "$gopath/bin/ferretdb"; return 0; fi
    fi
    return 1
}

build_ferretdb() {
    # A plain `go install .../cmd/ferretdb@v1.24.2` builds a binary that panics at start:
    # the module zip lacks the generated build/version/version.txt. So we build from a
    # writable copy of the module source with that file written, into $GOPATH/bin/ferretdb.
    local go target src dir
    go=$(go_bin) || die "Go is needed to build FerretDB (or put mongod on PATH)"
    target=$(ferretdb_target)
    mkdir -p "$VAR" "$(dirname "$target")"
    exec 9>"$VAR/ferretdb-build.lock"
    flock 9  # one build at a time; a waiting caller reuses the finished binary
    if ferretdb_works "$target"; then log "FerretDB already built: $target"; return 0; fi
    log "building FerretDB $FERRETDB_VERSION (a few minutes the first time)"
    dir=$("$go" mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n "$dir" && -d "$dir" ]] || die "go mod download of $FERRETDB_MODULE@$FERRETDB_VERSION failed"
    src=$(mktemp -d "${TMPDIR:-/tmp}/ferretdb-src.XXXXXX")
    cp -r "$dir/." "$src/"
    chmod -R u+w "$src"
    echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
    (cd "$src" && "$go" build -trimpath -buildvcs=false -o "$target.tmp" ./cmd/ferretdb)
    mv -f "$target.tmp" "$target"
    rm -rf "$src"
    ferretdb_works "$target" || die "built FerretDB does not run: $target"
    log "FerretDB built: $target"
    exec 9>&-
}

start_mongo() {
    if mongo_up; then
        log "a MongoDB-wire server already answers on $MONGO_HOST:$MONGO_PORT; leaving it"
        return 0
    fi
    port_busy "$MONGO_PORT" && die "port $MONGO_PORT is taken by something that does not answer MongoDB ping"
    if command -v mongod >/dev/null; then
        mkdir -p "$VAR/mongodb"
        log "starting mongod on $MONGO_HOST:$MONGO_PORT (data: var/mongodb)"
        mongod --bind_ip "$MONGO_HOST" --port "$MONGO_PORT" --dbpath "$VAR/mongodb" \
            --fork --logpath "$LOG/mongod.log" --pidfilepath "$RUN/mongod.pid" >/dev/null
        wait_for mongod mongo_up "$RUN/mongod.pid" "$LOG/mongod.log"
        record_started mongo
        return 0
    fi
    local bin
    bin=$(find_ferretdb) || { build_ferretdb; bin=$(find_ferretdb) || die "FerretDB build not usable"; }
    mkdir -p "$VAR/ferretdb" "$VAR/ferretdb-state"
    log "starting FerretDB ($bin) on $MONGO_HOST:$MONGO_PORT (data: var/ferretdb, log: var/log/ferretdb.log)"
    # setsid: detach from the caller's process group so Ctrl-C on make does not kill it.
    # --debug-addr=- : no debug/metrics HTTP listener at all.
    setsid nohup "$bin" \
        --handler=sqlite --sqlite-url="file:$VAR/ferretdb/" \
        --listen-addr="$MONGO_HOST:$MONGO_PORT" --telemetry=disable \
        --debug-addr=- --state-dir="$VAR/ferretdb-state" --log-level=warn \
        </dev/null >>"$LOG/ferretdb.log" 2>&1 &
    echo $! >"$RUN/ferretdb.pid"
    wait_for ferretdb mongo_up "$RUN/ferretdb.pid" "$LOG/ferretdb.log"
    record_started mongo
}

# ---------------------------------------------------------------- stop / status

# stop_pidfile NAME PIDFILE EXPECTED_COMMAND_SUBSTRING
stop_pidfile() {
    local name=$1 pidfile=$2 expect=$3 pid i
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    # guard against a recycled pid: only signal the process we launched
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$expect"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid"
        for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop in 10s; killing"
            kill -KILL "$pid" || true
        fi
    else
        log "$name (pid $pid) is not running"
    fi
    rm -f "$pidfile"
}

stop_redis() { stop_pidfile redis "$RUN/redis.pid" redis-server; }
stop_mongo() {
    stop_pidfile ferretdb "$RUN/ferretdb.pid" ferretdb
    stop_pidfile mongod "$RUN/mongod.pid" mongod
}

status() {
    local rc=0
    if redis_up; then echo "redis  $REDIS_HOST:$REDIS_PORT up"; else echo "redis  $REDIS_HOST:$REDIS_PORT down"; rc=1; fi
    if mongo_up; then echo "mongo  $MONGO_HOST:$MONGO_PORT up"; else echo "mongo  $MONGO_HOST:$MONGO_PORT down"; rc=1; fi
    local f
    for f in "$RUN"/*.pid; do [[ -e "$f" ]] && echo "started here: $(basename "$f" .pid) pid $(cat "$f")"; done
    return $rc
}

# ---------------------------------------------------------------- main

mkdir -p "$RUN" "$LOG"
cmd=${1:-start}
shift || true
case "$cmd" in
start | stop)
    if (($# == 0)); then set -- redis mongo; fi
    for s in "$@"; do
        case "$s" in
        redis | mongo) "${cmd}_$s" ;;
        "") ;;
        *) die "unknown service '$s' (expected redis or mongo)" ;;
        esac
    done
    ;;
status) status ;;
build-ferretdb) build_ferretdb ;;
*) die "usage: $0 start|stop [redis|mongo ...]|status|build-ferretdb" ;;
esac
