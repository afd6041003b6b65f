#!/usr/bin/env bash
# Every table and plot of docs/benchmarks.md, measured in one run (about 2 h 15 min on 2 cores:
# sections 1 to 4 about 70 minutes, section 5's fill runs about 50):
#
#   docs/bench/run-all.sh                 # appends to docs/bench/results.jsonl, then the report
#
# berth is measured the way users run it first: `berth serve` with its default settings and
# 2 worker processes, over HTTP from separate client processes (--target serve, the default).
# In-process runs (--target inproc) and runs that change a setting (--set) come after and say
# so in their titles and result lines.  The reference OpenStack Placement is started here and
# measured in the same run, on its own database on the same server.  Databases: PostgreSQL
# (berth_bench, berth_reference), and for issue 12's targets also SQLite and MariaDB.
set -euo pipefail
cd "$(dirname "$0")/../.."

PG=${BERTH_BENCH_POSTGRES:-postgresql+psycopg://postgres@127.0.0.1:5432/berth_bench}
MY=${BERTH_BENCH_MARIADB:-mysql+pymysql://root@127.0.0.1:3306/berth_bench}
SQ=${BERTH_BENCH_SQLITE:-sqlite:///${TMPDIR:-/tmp}/berth-bench.sqlite}
export BERTH_DATABASE_URL=$PG
OUT=${OUT:-docs/bench/results.jsonl}
# The report covers this run's lines only (SINCE=<an earlier run's start> to re-make a report
# after re-running some SECTIONS of that run).
SINCE=${SINCE:-$(date -u +%FT%T+00:00)}
BERTH=${BERTH:-.venv/bin/berth}
b() { echo "+ berth bench $*" >&2; "$BERTH" bench "$@" --out "$OUT"; }
# SECTIONS="1 1b" runs only those sections (default: all; the report is made either way).
want() { [[ " ${SECTIONS:-1 1b 2 3 4 5 6 7} " == *" $1 "* ]]; }

psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='berth_bench'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE berth_bench"
mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS berth_bench"
if want 7; then
# 7. Pull against push (issue 13): placement-bench's request list for each cloud placed by
#    8 schedulers (select_destinations) and by pull (a private NATS, one berth agent with
#    every host, 2x4 enqueuers, window 2000), a fresh cloud and server per run, until full.
#    100 projects (as a cloud of many tenants), then one project (the reserve step's cost).
#    Not timed yet: each 10,000-host run places about 390,000 instances, and any run stops
#    after 30 minutes (--seconds 1800), so the section takes between one and four hours.
b pull --hosts 100 --hosts 1000 --hosts 10000 --projects 100
b pull --hosts 100 --hosts 1000 --design pull --projects 1
# The reserve step with several instances per request (20 list entries per enqueue).
b pull --hosts 1000 --hosts 10000 --design pull --projects 100 --batch 20

fi

"$BERTH" bench reference stop || true
"$BERTH" bench reference start --workers 2

if want 1; then
# 1. Issue 12's targets: berth serve, default settings, 2 workers, 10,000 hosts, over HTTP.
#    Registration storm (64 clients), select_destinations (32 clients: 4 processes x 8 threads,
#    placement-bench's six sizes, berth's default weighers), and the Placement API claim path
#    (8 clients: GET /allocation_candidates?limit=50, PUT /allocations/{new consumer},
#    pack-first, modulo partitioning on the client side and none).  On all three databases.
#    --cpu-time: CPU ms per claim of the clients, the berth server and the database (the storm
#    records the server's and the database's per provider anyway): the machine's two cores
#    divided by their sum is the ceiling a run can reach.
for db in "$PG" "$SQ" "$MY"; do
    b register --database-url "$db" --hosts 10000 --clients 64 --processes 2
    b claims --database-url "$db" --mode scheduler --strategy default --partitioning none \
        --hosts 10000 --workers 4 --concurrency 8 --seconds 20 --repeat 3 --cpu-time
    b claims --database-url "$db" --mode placement --strategy pack --partitioning none,modulo \
        --limit 50 --hosts 10000 --workers 8 --seconds 20 --repeat 3 --cpu-time
done
# The reference beside it, same workloads (its storm on 1,000 hosts: 10,000 would take hours).
b register --target reference --hosts 1000 --clients 64 --processes 2
b register --hosts 1000 --clients 64 --processes 2
b claims --target reference --mode placement --strategy pack --partitioning none,modulo \
    --limit 50 --hosts 10000 --workers 8 --seconds 20

fi

if want 1b; then
# 1b. The defaults that issue 12 changed, each beside the old value in one run: the index
#     refresh (0: before every request; 1000 ms: the default) at 10,000 hosts, and the scan
#     limit (10, 20 = the default, 100 = the old default, 0 = every host) by how full a
#     200-host cloud gets with placement-bench's request list, pack-first; and the request
#     threads per worker (BERTH_THREADS, added by issue 12) by the registration storm.
b claims --mode scheduler --strategy default --partitioning none --hosts 10000 --workers 4 \
    --concurrency 8 --seconds 20 --set scheduler_index_refresh_ms=0,1000
b fill --mode scheduler --strategy pack --partitioning none --workers 4 --concurrency 8 \
    --hosts 200 --set scheduler_scan_limit=10,20,100,0
# Request threads per worker (16, the default; 256, what granian ran with before
# BERTH_THREADS existed), by the registration storm.
b register --hosts 10000 --clients 64 --processes 2 --set threads=16,256

fi

if want 2; then
# 2. The seed's "DB vs Python" table as it was defined: placement-bench's cloud (rows of 100
#    hosts: 100, 200, 400, 800), one scheduler (one berth worker), one destination per request
#    (the seed query), filtering in the database (sql), in Python over every host read per
#    request (python), and berth's in-memory index (memory); the reference beside them.
for n in 100 200 400 800; do
    b populate --profile placement-bench -n "$n"
    b populate --target reference --profile placement-bench -n "$n"
    b candidates --server-workers 1 --filter sql --queries seed --requests 300 --seconds 20 \
        --against reference
    b candidates --server-workers 1 --filter python --queries seed --requests 300 --seconds 20
    b candidates --server-workers 1 --filter memory --queries seed --requests 300 --seconds 20
done

fi

if want 3; then
# 3. GET /allocation_candidates on the candidates issue's cloud (64 cores, 256 GB, 2 TB,
#    10% GPU, 10 aggregates): berth with one worker (the issue's setting) in its three filter
#    modes, and the reference, same data.
for n in 100 200 400 800 10000; do
    b populate --profile candidates -n "$n"
    b populate --target reference --profile candidates -n "$n"
    b candidates --server-workers 1 --against reference --queries limit,nolimit --requests 200 --seconds 20
    b candidates --server-workers 1 --filter sql --queries limit,nolimit --requests 200 --seconds 20
    b candidates --server-workers 1 --filter python --queries limit,nolimit --requests 100 --seconds 20
    b candidates --server-workers 1 --queries trait,member_of,granular --requests 200 --seconds 10
done
# Repeats at 10,000 (medians), throughput against concurrency, and against worker processes.
for _ in 1 2; do
    b candidates --server-workers 1 --queries limit,nolimit --requests 300 --seconds 20
done
b candidates --queries limit --concurrency 4 --server-workers 2 --requests 1000 --seconds 10
b workers --processes 1,2,4 --servers gunicorn,granian --concurrency 8 --seconds 10

# 100,000 hosts: p50 with limit=50, worker RSS and cold start (three fresh servers).
b populate --profile candidates -n 100000
for _ in 1 2 3; do
    b candidates --server-workers 1 --queries limit --requests 300 --seconds 20
done

# Nested providers (2 NUMA nodes per host) and sharing storage pools, both targets.
b populate --profile candidates -n 1000 --numa 2 --shared-storage-gb 100000
b populate --target reference --profile candidates -n 1000 --numa 2 --shared-storage-gb 100000
b candidates --server-workers 1 --against reference --queries nested,granular,limit --requests 100 --seconds 15

fi

if want 4; then
# 4. Claims: placement-bench's cloud, repopulated per run, 8 clients, pack-first, the seed's
#    host counts.  Over HTTP with default settings first (berth's scheduler, and the Placement
#    API claim path), then the reference, then berth in process, then tuned settings.
b claims --mode scheduler --strategy pack --partitioning none,modulo --workers 8 --seconds 10 \
    --hosts 100 --hosts 200 --hosts 400 --hosts 800 --hosts 10000 --concurrency 1 --concurrency 4
b claims --mode placement --strategy pack --partitioning none,modulo,strict --limit 50 \
    --workers 8 --seconds 10 --hosts 100 --hosts 200 --hosts 400 --hosts 800
b claims --target reference --strategy pack --partitioning none,modulo --limit 50 --workers 8 \
    --seconds 15 --hosts 100 --hosts 200 --hosts 400 --hosts 800
b claims --target reference --strategy pack --partitioning none --limit 0 --workers 8 --seconds 20 \
    --hosts 100 --hosts 800
b claims --target inproc --strategy pack --partitioning none,modulo --workers 8 --seconds 10 \
    --hosts 100 --hosts 800 --hosts 10000 --repeat 3 --concurrency 1 --concurrency 32
b claims --target inproc --strategy pack --partitioning none,modulo --workers 8 --seconds 10 \
    --hosts 100 --hosts 800 --hosts 10000 --repeat 3 --concurrency 1 --concurrency 32 \
    --set scheduler_index_refresh_ms=1000 --set scheduler_scan_limit=10
# The two claim designs in one run: one transaction per claim, and group commit.
b claims --target inproc --strategy pack --partitioning modulo --workers 8 --seconds 10 \
    --hosts 10000 --repeat 3 --concurrency 8 --set scheduler_claim_batch=0,64
# The other strategies and partitionings, at 800 hosts.
b claims --strategy spread,random --partitioning none,hash --workers 8 --seconds 10 --hosts 800

fi

if want 5; then
# 5. placement-bench's own run: one fixed request list (same seed, same list), until the cloud
#    is full; 1 and 8 clients; berth's scheduler and the Placement API path (strict modulo
#    partitions: a client stops when its own hosts are full), and the reference (100 hosts).
b fill --mode scheduler --strategy pack --partitioning none,modulo --workers 8 \
    --hosts 100 --hosts 200 --hosts 400 --hosts 800
b fill --mode scheduler --strategy pack --partitioning none --workers 1 \
    --hosts 100 --hosts 200 --hosts 400 --hosts 800
b fill --mode placement --strategy pack --partitioning none,strict --workers 8 \
    --hosts 100 --hosts 200 --hosts 400 --hosts 800
b fill --mode scheduler --strategy default --partitioning none --workers 4 --concurrency 8 \
    --hosts 800
b fill --target reference --strategy pack --partitioning none,strict --workers 8 --hosts 100 \
    --seconds 600

fi

if want 6; then
# 6. The old design: the compute host claims 500 ms after selection; collisions reschedule.
b compute-claims --target inproc --hosts 100 --workers 8 --seconds 10 --delay-ms 500
b compute-claims --target reference --hosts 100 --workers 8 --seconds 15 --delay-ms 500

fi

"$BERTH" bench reference stop
# A run of some SECTIONS only reports into its own directory (REPORT_DIR), so that the full
# run's report stays: SECTIONS=1 REPORT_DIR=docs/bench/targets docs/bench/run-all.sh
REPORT_DIR=${REPORT_DIR:-docs/bench}
"$BERTH" bench report "$OUT" --since "$SINCE" --output "$REPORT_DIR/report.md" --plots "$REPORT_DIR"
