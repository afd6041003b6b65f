"""PLACEHOLDER: being written."""

from berth.api.errors import HTTPError

def create(req, resp, **kw):
    raise HTTPError(501, "not yet")

def delete(req, resp, **kw):
    raise HTTPError(501, "not yet")

def list_classes(req, resp, **kw):
    raise HTTPError(501, "not yet")

def show(req, resp, **kw):
    raise HTTPError(501, "not yet")

def update(req, resp, **kw):
    raise HTTPError(501, "not yet")

