"""``GET /``: the version document (no authentication needed)."""

from __future__ import annotations

import falcon

from berth.api import microversion
from berth.api.util import send_json, set_last_modified


def home(req: falcon.Request, resp: falcon.Response) -> None:
    """The one version of the API and its microversion range."""
    body = {
        "versions": [
            {
                "id": "v1.0",
                "max_version": microversion.max_version_string(),
                "min_version": microversion.min_version_string(),
                "status": "CURRENT",
                "links": [{"rel": "self", "href": ""}],
            }
        ]
    }
    send_json(resp, body)
    set_last_modified(req, resp, None)
