"""Server settings and harness features for each conformance profile."""

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
