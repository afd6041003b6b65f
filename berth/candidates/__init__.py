"""GET /allocation_candidates: which providers could take these resources?

A request flows through one module per stage:

* :mod:`~berth.candidates.request` parses the query into request groups and
  request-wide parameters (the reference's checks, in its order);
* :mod:`~berth.candidates.plan` resolves names to ids, giving up early the
  way the reference does (an empty answer, or a 400 for unknown names);
* a *source* supplies the provider universe and per-group matchers: the
  worker's in-memory :mod:`~berth.candidates.index` (kept current by the change
  feed; :mod:`~berth.candidates.matching`) or, with ``candidates_filter =
  "sql"``, the database per request (:mod:`~berth.candidates.sql_source`), or
  with ``"python"`` every provider read per request and matched in Python
  (:mod:`~berth.candidates.python_source`, the seed's design);
* :mod:`~berth.candidates.anchors` picks the roots worth visiting, smallest
  constraint first; :mod:`~berth.candidates.engine` combines the groups' options
  at each root lazily (trees, sharing providers, group_policy, same_subtree);
* :mod:`~berth.candidates.results` stops at ``limit`` and picks the provider
  summaries; :mod:`~berth.candidates.render` shapes the body per microversion.

:mod:`~berth.candidates.service` wires the stages; :mod:`~berth.candidates.model`
holds the plain data.
"""
