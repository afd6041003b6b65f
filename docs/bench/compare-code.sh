#!/usr/bin/env bash
# Two versions of berth's code measured in one run, alternately, on the same database:
#
#   docs/bench/compare-code.sh BEFORE_REF [AFTER_REF]     # AFTER_REF: the work tree (default)
#   WORKLOADS=candidates REPEAT=3 docs/bench/compare-code.sh BEFORE_REF   # some workloads only
#
# Each workload runs REPEAT times per version, before and after taking turns,
# so a slow spell of this noisy 2-core machine hits both alike.  Every result
# line is appended to $OUT with a "code" field naming the commit that made it
# (the older code's lines are tagged by this script, which knows what it ran).
#
# Workloads (placement-bench's cloud, PostgreSQL, default server settings):
#   scheduler   berth bench claims --target inproc: 8 scheduler processes, 32 requests
#               at once each, modulo partitioning, 10,000 hosts (the group commit path)
#   api-write   berth bench claims --target serve --mode placement: 8 clients doing
#               GET /allocation_candidates (no limit) then PUT /allocations over HTTP, 1,000 hosts
#   candidates  berth bench candidates --target serve: GET /allocation_candidates limit=50
#               over HTTP, 10,000 hosts
set -euo pipefail
cd "$(dirname "$0")/../.."
BEFORE=${1:?usage: compare-code.sh BEFORE_REF [AFTER_REF]}
AFTER=${2:-}
REPEAT=${REPEAT:-3}
WORKLOADS=${WORKLOADS:-"scheduler api-write candidates"}  # a subset to run only those
OUT=${OUT:-docs/bench/results.jsonl}
PY=${PY:-.venv/bin/python}
export BERTH_DATABASE_URL=${BERTH_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/berth_compare}

db=${BERTH_DATABASE_URL##*/}
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db"

work=$(mktemp -d)
trap 'git worktree remove --force "$work/before" 2>/dev/null; [ -z "$AFTER" ] || git worktree remove --force "$work/after" 2>/dev/null; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/before" "$BEFORE"
trees=("before=$work/before")
if [ -n "$AFTER" ]; then
    git worktree add -q --detach "$work/after" "$AFTER"
    trees+=("after=$work/after")
else
    trees+=("after=$PWD")
fi

commit_of() {  # the commit a tree holds, "+dirty" when its code has uncommitted changes
    local c; c=$(git -C "$1" rev-parse --short=12 HEAD)
    # (docs/ is left out: the result lines this script appends change it.)
    [ -z "$(git -C "$1" status --porcelain --untracked-files=no -- berth pyproject.toml)" ] \
        || c="$c+dirty"
    echo "$c"
}

run() {  # name tree -- bench arguments
    local name=$1 tree=$2; shift 3
    local lines="$work/$name.jsonl" code; code=$(commit_of "$tree")
    echo "+ [$name $code] berth bench $*" >&2
    # The schema is upgraded by this version's own code before it runs.
    PYTHONPATH="$tree" "$PY" -m berth.cli db upgrade >/dev/null
    rm -f "$lines"
    PYTHONPATH="$tree" "$PY" -m berth.cli bench "$@" --out "$lines"
    "$PY" - "$lines" "$OUT" "$name" "$code" "$*" <<'EOF'
import json, sys
src, out, name, code, args = sys.argv[1:]
with open(src) as fh, open(out, "a") as dst:
    for text in fh:
        line = json.loads(text)
        line["code"] = {"version": name, "commit": code, "command": "berth bench " + args}
        dst.write(json.dumps(line, sort_keys=True) + "\n")
EOF
}

each() {  # bench arguments: run them for every version in turn, REPEAT times
    for _ in $(seq "$REPEAT"); do
        for entry in "${trees[@]}"; do run "${entry%%=*}" "${entry#*=}" -- "$@"; done
    done
}

wanted() { [[ " $WORKLOADS " == *" $1 "* ]]; }

! wanted scheduler || each claims --target inproc --mode scheduler --strategy pack --partitioning modulo --workers 8 \
    --concurrency 32 --seconds 10 --hosts 10000
! wanted api-write || each claims --target serve --mode placement --limit 0 --strategy pack --partitioning modulo --workers 8 \
    --seconds 10 --hosts 1000
if wanted candidates; then
    PYTHONPATH="$PWD" "$PY" -m berth.cli bench populate --profile candidates -n 10000 --out /dev/null
    each candidates --target serve --queries limit --requests 300 --seconds 10 --server-workers 2
fi
