"""PLACEHOLDER: being written."""

from berth.api.errors import HTTPError

def replace(req, resp, **kw):
    raise HTTPError(501, "not yet")

def show(req, resp, **kw):
    raise HTTPError(501, "not yet")

