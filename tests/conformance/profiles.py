"""Server settings and harness features for each conformance profile, and the upstream
files each profile's server is run with in the test suite."""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))

# profile -> (BERTH_* environment for the server, --features for run.py)
PROFILES: dict[str, tuple[dict[str, str], str]] = {
    "default": ({"BERTH_ENFORCE_NEW_DEFAULTS": "false"}, ""),
    "secure-rbac": ({"BERTH_ENFORCE_NEW_DEFAULTS": "true"}, "secure-rbac"),
    "open-policy": (
        {
            "BERTH_ENFORCE_NEW_DEFAULTS": "false",
            "BERTH_POLICY_FILE": os.path.join(HERE, "policy-open.yaml"),
        },
        "open-policy",
    ),
    "cors": (
        {
            "BERTH_ENFORCE_NEW_DEFAULTS": "false",
            "BERTH_CORS_ALLOWED_ORIGIN": "http://valid.example.com",
            "BERTH_CORS_ALLOW_HEADERS": "openstack-api-version",
        },
        "cors",
    ),
}

# profile -> the fixture classes whose files the test suite runs against that profile's
# server (tests/conformance/test_conformance.py), besides the files a rule of run.py
# (RULES) names for its feature; it skips the other files.  They answer there as under
# the default profile, which runs them all on three databases: a secure-rbac server
# differs only for the *-rbac files and the reshaper tests the rules name, a CORS server
# only for CORS requests.  (An open-policy server runs only the *-policy files anyway:
# run.py's EXCLUSIVE_FEATURES.)  ``scripts/conformance`` (run.py) still scores a server
# on every file, whatever its profile.
FIXTURES: dict[str, tuple[str, ...]] = {
    "secure-rbac": ("SecureRBACPolicyFixture", "LegacyRBACPolicyFixture"),
    "cors": ("CORSFixture",),
}
