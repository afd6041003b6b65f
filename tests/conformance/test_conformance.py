"""The upstream Placement gabbi files, run over real HTTP against berth.

Each (profile, database) pair starts one berth server (gunicorn, 2 workers);
every upstream YAML file it runs is one pytest test.  The files are read from
the installed ``openstack-placement`` wheel, never copied.  The default profile
runs every file on SQLite, PostgreSQL and MariaDB.  The other profiles run on
SQLite only the files whose answers depend on the profile: open-policy the 9
``*-policy`` files (run.py's EXCLUSIVE_FEATURES skips the others); secure-rbac
and cors (``profiles.FIXTURES``) the files of their fixtures (the 18 ``*-rbac``
files; ``cors.yaml``) and those a rule of run.py names for their feature
(``reshaper.yaml``, ``consumer-types-1.38.yaml``; ``non-cors.yaml``,
``basic-http.yaml``); their other files are skipped.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fixtures_http  # noqa: E402
import run  # noqa: E402
from conftest import server_database_url  # noqa: E402
from profiles import FIXTURES, PROFILES  # noqa: E402
from server import running_berth  # noqa: E402

# Upstream files not served yet (none: GET /allocation_candidates is in).
NOT_YET: list[str] = []

SERVERS = [
    ("default", "sqlite"),
    ("default", "postgresql"),
    ("default", "mysql"),
    ("secure-rbac", "sqlite"),
    ("open-policy", "sqlite"),
    ("cors", "sqlite"),
]


def _files() -> list[str]:
    gabbits = run.find_gabbits_dir()
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(gabbits, "*.yaml")))
    return [n for n in names if not any(fnmatch.fnmatch(n, pat + ".yaml") for pat in NOT_YET)]


FILES = _files()


def _fixtures_of(fname: str) -> set[str]:
    """The fixture classes an upstream file names."""
    with open(os.path.join(run.find_gabbits_dir(), fname)) as fh:
        return set(yaml.safe_load(fh).get("fixtures") or ())


def _runs(profile: str, fname: str) -> bool:
    """Whether the suite runs ``fname`` against ``profile``'s server."""
    wanted = FIXTURES.get(profile)
    if wanted is None:
        return True
    features = set(PROFILES[profile][1].split(","))
    named = {rule[0] for rule in run.RULES if rule[2].partition(":")[2] in features}
    return fname in named or bool(_fixtures_of(fname) & set(wanted))


@pytest.fixture(scope="module", params=SERVERS, ids=lambda s: f"{s[0]}-{s[1]}")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, dict[str, object]]]:
    """A running berth for one profile and database; yields (profile, features, suites)."""
    profile, backend = request.param
    env, features = PROFILES[profile]
    url = server_database_url(backend)
    log = tmp_path_factory.mktemp(f"{profile}-{backend}") / "server.log"
    with running_berth(url, workers=2, env=env, log_path=str(log)) as base:
        os.environ["CONFORMANCE_URL"] = base
        os.environ["CONFORMANCE_SERVER_FEATURES"] = features
        suites = dict(run.build_file_suites(base, run.find_gabbits_dir()))
        yield profile, features, suites


@pytest.mark.slow
@pytest.mark.parametrize("fname", FILES)
def test_gabbit_file(server: tuple[str, str, dict[str, object]], fname: str) -> None:
    """Every test of one upstream file passes (or is skipped by the profile)."""
    profile, _features, suites = server
    if not _runs(profile, fname):
        # Skipped rather than left out of the parameters: the server's parameter must stay
        # module-scoped (one server per profile and database, and one xdist group).
        pytest.skip(f"answers under {profile} as under the default profile (profiles.FIXTURES)")
    result = run.run_file(fname, suites[fname], fixtures_http._features())
    if result["skipped"] == result["total"]:
        pytest.skip("; ".join(result["skip_reasons"]))
    bad = [t for t in result["tests"] if t["outcome"] in ("failed", "errored")]
    if bad:
        lines = []
        for t in bad:
            last = [ln for ln in t["message"].splitlines() if ln.strip()]
            lines.append(f"[{t['outcome']}] {t['name']}: {(last[-1] if last else '')[:300]}")
        pytest.fail(
            f"{len(bad)} of {result['total']} gabbi tests not passed:\n" + "\n".join(lines),
            pytrace=False,
        )
