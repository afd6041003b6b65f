"""PLACEHOLDER: being written."""

from berth.api.errors import HTTPError

def delete_for_consumer(req, resp, **kw):
    raise HTTPError(501, "not yet")

def list_for_consumer(req, resp, **kw):
    raise HTTPError(501, "not yet")

def list_for_provider(req, resp, **kw):
    raise HTTPError(501, "not yet")

def post_many(req, resp, **kw):
    raise HTTPError(501, "not yet")

def put_for_consumer(req, resp, **kw):
    raise HTTPError(501, "not yet")

