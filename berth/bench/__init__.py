"""The benchmark lab behind ``berth bench``: one workload, any Placement-compatible target.

Modules: ``topology`` (the cloud), ``bulk`` / ``loader`` (writing it), ``transport`` /
``targets`` (what is measured), ``candidates``, ``claims`` / ``claimers`` / ``strategies``
(the workloads), ``invariants`` (the capacity check), ``records`` / ``report`` / ``seed`` /
``plots`` (results), ``reference`` (the real OpenStack Placement), ``cli`` / ``cli_claims``.
"""
