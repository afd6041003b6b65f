#!/usr/bin/env bash
# Every figure of docs/benchmarks.md, measured in one run (about 30 minutes on 2 cores):
#
#   docs/bench/run-all.sh                 # appends to docs/bench/results.jsonl
#   berth bench report docs/bench/results.jsonl --output docs/bench/report.md --plots docs/bench
#
# berth and the reference OpenStack Placement both keep their data in PostgreSQL
# (databases berth_bench and berth_reference on the same server); berth serves with
# one worker process for the candidates figures (the issue's setting), the reference
# with two (as in the seed's figures); the claims run 8 scheduler processes.
set -euo pipefail
cd "$(dirname "$0")/../.."

export BERTH_DATABASE_URL=${BERTH_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/berth_bench}
OUT=${OUT:-docs/bench/results.jsonl}
BERTH=${BERTH:-.venv/bin/berth}
b() { echo "+ berth bench $*" >&2; "$BERTH" bench "$@" --out "$OUT"; }

psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='berth_bench'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE berth_bench"
"$BERTH" bench reference stop || true
"$BERTH" bench reference start --workers 2

# 1. GET /allocation_candidates on the issue's cloud (64 cores, 256 GB, 2 TB, 10% GPU,
#    10 aggregates): berth (memory and SQL filtering) and the reference, same data.
for n in 100 800 10000; do
    b populate --profile candidates -n "$n"
    b populate --target reference --profile candidates -n "$n"
    b candidates --target serve --against reference --queries limit,nolimit --requests 200 --seconds 20
    b candidates --target serve --filter sql --queries limit,nolimit --requests 200 --seconds 20
    b candidates --target serve --queries trait,member_of,granular --requests 200 --seconds 10
done
# Repeats at 10,000 (medians), throughput against concurrency, and against worker processes.
for _ in 1 2; do
    b candidates --target serve --queries limit,nolimit --requests 300 --seconds 20
done
b candidates --target serve --queries limit --concurrency 4 --server-workers 2 --requests 1000 --seconds 10
b workers --processes 1,2,4 --servers gunicorn,granian --concurrency 8 --seconds 10

# 100,000 hosts: p50 with limit=50, worker RSS and cold start (three fresh servers).
b populate --profile candidates -n 100000
for _ in 1 2 3; do
    b candidates --target serve --queries limit --requests 300 --seconds 20
done

# Nested providers (2 NUMA nodes per host) and sharing storage pools, both targets.
b populate --profile candidates -n 1000 --numa 2 --shared-storage-gb 100000
b populate --target reference --profile candidates -n 1000 --numa 2 --shared-storage-gb 100000
b candidates --target serve --against reference --queries nested,granular,limit --requests 100 --seconds 15

# 2. Claims: placement-bench's cloud (24 cores x16, 256 GB x1.5), 8 schedulers, pack-first.
# berth: one request at a time per scheduler (the seed's way) and 32 at once (group commit).
b claims --target inproc --strategy pack --partitioning none,modulo --workers 8 --seconds 10 \
    --hosts 100 --hosts 800 --hosts 10000 --repeat 3 --concurrency 1 --concurrency 32 \
    --set scheduler_index_refresh_ms=1000 --set scheduler_scan_limit=10
b claims --target inproc --strategy pack --partitioning none,modulo --workers 8 --seconds 10 \
    --hosts 200 --hosts 400 \
    --set scheduler_index_refresh_ms=1000 --set scheduler_scan_limit=10
# The two claim designs in one run: one transaction per claim, and group commit.
b claims --target inproc --strategy pack --partitioning modulo --workers 8 --seconds 10 \
    --hosts 10000 --repeat 3 --concurrency 8 \
    --set scheduler_index_refresh_ms=1000 --set scheduler_scan_limit=10 --set scheduler_claim_batch=0,64
b claims --target reference --strategy pack --partitioning none,modulo --workers 8 --seconds 15 \
    --hosts 100 --hosts 800
b claims --target reference --strategy pack --partitioning none --workers 8 --seconds 20 --hosts 10000
# Over HTTP, and the other strategies and partitionings, at 800 hosts.
b claims --target serve --strategy pack --partitioning none,modulo --workers 8 --seconds 10 --hosts 800
b claims --target inproc --strategy spread,random --partitioning none,hash --workers 8 --seconds 10 \
    --hosts 800 \
    --set scheduler_index_refresh_ms=1000 --set scheduler_scan_limit=10

# 3. The old design: the compute host claims 500 ms after selection; collisions reschedule.
b compute-claims --target inproc --hosts 100 --workers 8 --seconds 10 --delay-ms 500
b compute-claims --target reference --hosts 100 --workers 8 --seconds 15 --delay-ms 500

"$BERTH" bench reference stop
"$BERTH" bench report "$OUT" --output docs/bench/report.md --plots docs/bench
