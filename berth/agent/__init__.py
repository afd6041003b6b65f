"""The host agent of pull-based dispatch (``berth agent``, docs/pull.md).

A client of berth: it reads and creates providers through Placement's HTTP
API, learns the work queues from a JetStream key-value bucket, fetches work
from the queues its simulated hosts can take, and claims, boots and
confirms through ``/scheduler/pull/...``.  It imports nothing of the
server (tests/test_layers.py).
"""
