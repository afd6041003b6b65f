"""PLACEHOLDER: being written."""

from berth.api.errors import HTTPError

def provider_usages(req, resp, **kw):
    raise HTTPError(501, "not yet")

def total_usages(req, resp, **kw):
    raise HTTPError(501, "not yet")

