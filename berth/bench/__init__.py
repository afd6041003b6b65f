"""The benchmark lab behind ``berth bench``: one workload, any Placement-compatible target.

Modules: ``cloud`` (provider specs and the topology), ``cloud_db`` / ``cloud_api`` /
``populate`` (writing a cloud), ``launch`` (a ``berth serve`` of its own, the tests' too),
``transport`` / ``targets`` (what is measured), ``candidates``, ``claims`` / ``claimers`` /
``strategies`` (the workloads), ``invariants`` (the capacity check), ``procfs`` (memory and
CPU of processes), ``records`` / ``summary`` / ``report`` / ``seed`` / ``plots`` (results),
``reference`` (the real OpenStack Placement), ``cli`` / ``cli_options`` / ``cli_claims``.
"""
