"""PLACEHOLDER: being written."""

from berth.api.errors import HTTPError

def create(req, resp, **kw):
    raise HTTPError(501, "not yet")

def delete(req, resp, **kw):
    raise HTTPError(501, "not yet")

def delete_for_provider(req, resp, **kw):
    raise HTTPError(501, "not yet")

def list_for_provider(req, resp, **kw):
    raise HTTPError(501, "not yet")

def list_traits(req, resp, **kw):
    raise HTTPError(501, "not yet")

def replace_for_provider(req, resp, **kw):
    raise HTTPError(501, "not yet")

def show(req, resp, **kw):
    raise HTTPError(501, "not yet")

