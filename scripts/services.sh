#!/usr/bin/env bash
# Start/stop the local servers the service needs, on loopback only:
#   Redis (Celery broker)            127.0.0.1:6379
#   MongoDB-wire server (storage)    127.0.0.1:27017  -- mongod if on PATH, else FerretDB (SQLite)
#   PostgreSQL (accounts database)   127.0.0.1:5432   -- a private cluster in var/postgres (or the next free
#                                                        port); `make test` runs the account tests on it too
#
# Usage: scripts/services.sh start|stop [redis|mongo|postgres ...]|status|url postgres|build-ferretdb
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
PG_HOST=127.0.0.1
# An explicit POSTGRES_PORT must be free; the default 5432 gives way to the next free port (printed).
PG_PORT="${POSTGRES_PORT:-5432}"
PG_DB="${POSTGRES_DB:-loop}"
PG_USER="${POSTGRES_USER:-loop}"
PG_PASSWORD="${POSTGRES_PASSWORD:-loop}"
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

# ---------------------------------------------------------------- postgres
# A private cluster (initdb once, then pg_ctl) under var/postgres, on loopback only, with a database
# and a login that may create databases (pytest-django creates test_<name>). The URL goes to
# var/run/postgres.url (`scripts/services.sh url postgres` prints it). A throwaway test cluster:
# fsync is off, so a crash of the machine may lose it (initdb runs again).

pg_bindir() {
    # Debian's layout: /usr/lib/postgresql/<major>/bin (the newest major); else initdb on PATH.
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return 0; fi
    command -v initdb >/dev/null && command -v pg_ctl >/dev/null && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

ensure_postgres() {
    pg_bindir >/dev/null && return 0
    command -v apt-get >/dev/null || die "PostgreSQL not found and apt-get unavailable; install PostgreSQL (initdb, pg_ctl)"
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "PostgreSQL not found; install Debian's postgresql (needs root)"
        sudo="sudo"
    fi
    log "installing Debian's postgresql (apt-get)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    pg_bindir >/dev/null || die "initdb/pg_ctl still not found after apt-get install postgresql"
}

# Where the cluster lives, and who runs it: initdb and postgres refuse to run as root, so root runs them
# as Debian's `postgres` user; that user must be able to reach the data folder.
pg_base() {
    local base="$VAR"
    if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$VAR" 2>/dev/null; then
        # a checkout the postgres user cannot enter (e.g. under a private home): a folder of its own
        base="${TMPDIR:-/tmp}/loop-postgres-$(printf '%s' "$REPO" | md5sum | cut -c1-10)"
    fi
    echo "$base"
}

as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (Debian's postgresql package creates it)"
        # from /: the postgres user may not be allowed into the caller's folder
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_own() {
    # the folders and the log the server writes, owned by the user that runs it
    if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$@"; fi
}

postgres_url() { echo "postgres://$PG_USER:$PG_PASSWORD@$PG_HOST:$1/$PG_DB"; }

postgres_running_here() {
    [[ -f "$RUN/postgres.pid" && -f "$RUN/postgres.url" ]] || return 1
    local pid
    pid=$(cat "$RUN/postgres.pid")
    kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q postgres
}

start_postgres() {
    if postgres_running_here; then
        log "postgres (started here) already runs: DATABASE_URL=$(cat "$RUN/postgres.url")"
        return 0
    fi
    local port=$PG_PORT
    if port_busy "$port"; then
        [[ -n "${POSTGRES_PORT:-}" ]] && die "POSTGRES_PORT=$port is taken; choose a free port"
        for port in $(seq 5433 5450) ""; do [[ -n "$port" ]] && ! port_busy "$port" && break; done
        [[ -n "$port" ]] || die "ports 5432-5450 are all taken; set POSTGRES_PORT to a free port"
        log "port $PG_PORT is taken by another server; using $port"
    fi
    ensure_postgres
    local bin base data sock logfile
    bin=$(pg_bindir)
    base=$(pg_base)
    data="$base/postgres"
    sock="$base/postgres-socket"
    logfile="$LOG/postgres.log"
    [[ "$base" == "$VAR" ]] || logfile="$base/postgres.log"
    mkdir -p "$data" "$sock"
    touch "$logfile"
    pg_own "$data" "$sock" "$logfile"
    chmod 700 "$data"
    if [[ ! -s "$data/PG_VERSION" ]]; then
        log "initdb: a private cluster in $data"
        as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --no-locale >>"$logfile" 2>&1 || { tail -n 20 "$logfile" >&2; die "initdb failed"; }
    fi
    log "starting postgres on $PG_HOST:$port (data: $data, log: $logfile)"
    as_pg "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t "$TIMEOUT" \
        -o "-c listen_addresses=$PG_HOST -c port=$port -c unix_socket_directories=$sock -c fsync=off" start \
        >/dev/null || { tail -n 30 "$logfile" >&2; die "postgres did not start"; }
    head -n 1 "$data/postmaster.pid" >"$RUN/postgres.pid"
    echo "$data" >"$RUN/postgres.data"
    record_started postgres
    # The login and its database, once (idempotent); the password goes through a psql variable.
    as_pg "$bin/psql" -h "$sock" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt \
        -v user="$PG_USER" -v password="$PG_PASSWORD" -v db="$PG_DB" <<'SQL' >/dev/null
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password')
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
    postgres_url "$port" >"$RUN/postgres.url"
    log "postgres is up: DATABASE_URL=$(cat "$RUN/postgres.url") (make test: TEST_POSTGRES_URL=...)"
}

stop_postgres() {
    [[ -f "$RUN/postgres.pid" ]] || return 0
    local bin data
    if postgres_running_here && bin=$(pg_bindir) && data=$(cat "$RUN/postgres.data" 2>/dev/null) && [[ -d "$data" ]]; then
        log "stopping postgres (pid $(cat "$RUN/postgres.pid"))"
        # fast: open sessions are ended (a smart shutdown would wait for them)
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null || log "pg_ctl stop failed"
    else
        stop_pidfile postgres "$RUN/postgres.pid" postgres
    fi
    rm -f "$RUN/postgres.pid" "$RUN/postgres.url" "$RUN/postgres.data"
}

print_url() {
    [[ "${1:-}" == postgres ]] || die "usage: $0 url postgres"
    postgres_running_here || die "postgres is not running (started here): run 'scripts/services.sh start postgres'"
    cat "$RUN/postgres.url"
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
    if postgres_running_here; then echo "postgres $(cat "$RUN/postgres.url") up"; else echo "postgres not started here"; rc=1; fi
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
    if (($# == 0)); then set -- redis mongo postgres; fi
    for s in "$@"; do
        case "$s" in
        redis | mongo | postgres) "${cmd}_$s" ;;
        "") ;;
        *) die "unknown service '$s' (expected redis, mongo or postgres)" ;;
        esac
    done
    ;;
status) status ;;
url) print_url "$@" ;;
build-ferretdb) build_ferretdb ;;
*) die "usage: $0 start|stop [redis|mongo|postgres ...]|status|url postgres|build-ferretdb" ;;
esac
