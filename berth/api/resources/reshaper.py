"""PLACEHOLDER: being written."""

from berth.api.errors import HTTPError

def reshape(req, resp, **kw):
    raise HTTPError(501, "not yet")

