#!/usr/bin/env bash
# Celery workers by kind of work (myproject/settings.py, WORKER_KINDS: reports, imports, notifications,
# maintenance; docs/operations.md "Workers and queues"). `make worker` runs this with WORKER_QUEUES.
#
#   scripts/worker.sh                            every kind, as three workers: reports+imports,
#                                                notifications, maintenance (the development set)
#   scripts/worker.sh reports                    one worker for the reports queue only
#   scripts/worker.sh notifications,maintenance  one worker for both kinds
#   scripts/worker.sh reports imports            one worker per argument
#
# Why several workers rather than one consuming every queue: a Celery worker runs at most --concurrency
# tasks at once, whatever their queues, so with its processes busy on reports an alert delivery would wait
# for a report to end. A worker per group gives each group process slots nothing else can take.
#
# Concurrency: WORKER_CONCURRENCY for every worker when set, else per kind (a group takes its largest):
# reports 2, imports 1, notifications 2, maintenance 1. WORKER_LOGLEVEL (default info). WORKER_METRICS_PORT=9101:
# each worker serves its /metrics on 9101, 9102, ... (docs/operations.md#metrics). Ctrl-C or
# SIGTERM stops every worker started here (a warm shutdown: running tasks finish); so does one exiting.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [[ -z "${CELERY:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/celery" ]]; then CELERY="$REPO/.venv/bin/celery"; else CELERY=celery; fi
fi
DEFAULT_GROUPS="reports,imports notifications maintenance"
LOGLEVEL="${WORKER_LOGLEVEL:-info}"

concurrency_of() {
    local group=$1 kind best=0 n
    if [[ -n "${WORKER_CONCURRENCY:-}" ]]; then echo "$WORKER_CONCURRENCY"; return; fi
    IFS=, read -ra kinds <<<"$group"
    for kind in "${kinds[@]}"; do
        case "$kind" in
        reports | notifications) n=2 ;;
        *) n=1 ;;  # imports, maintenance (an unknown kind is refused by the worker itself: loop.E014)
        esac
        ((n > best)) && best=$n
    done
    echo "$best"
}

# One worker in the foreground of this shell (its node name: the kinds joined by '-', @ the host). With
# WORKER_METRICS_PORT set, worker number $2 (0, 1, ...) serves its /metrics on that port + $2.
run_worker() {
    local group=$1 index=${2:-0}
    if [[ -n "${WORKER_METRICS_PORT:-}" && "${WORKER_METRICS_PORT}" != 0 ]]; then
        export WORKER_METRICS_PORT=$((WORKER_METRICS_PORT + index))
    fi
    WORKER_QUEUES="$group" exec "$CELERY" -A myproject worker -l "$LOGLEVEL" \
        -n "${group//,/-}@%h" --concurrency "$(concurrency_of "$group")"
}

if (($# == 0)); then
    # shellcheck disable=SC2086  # the groups are words
    set -- $DEFAULT_GROUPS
fi
if (($# == 1)); then
    run_worker "$1"
fi

pids=()
index=0
stop_all() {
    trap - INT TERM
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
for group in "$@"; do
    # each worker's lines prefixed with its kinds; $! is the worker (not sed)
    (run_worker "$group" "$index") > >(sed -u "s/^/[${group}] /") 2>&1 &
    pids+=("$!")
    index=$((index + 1))
done
rc=0
wait -n "${pids[@]}" || rc=$?
echo "[worker.sh] a worker exited (status $rc): stopping the others" >&2
stop_all
exit "$rc"
