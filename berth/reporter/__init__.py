"""``berth host report``: push a host's state to berth's scheduler (docs/scheduler.md, "Reporter").

Like the agent, a client of berth's HTTP API that imports nothing of the server:
``metrics`` (what to send: /proc, or synthetic), ``client`` (the PATCH of one
namespace, with its generation), ``sender`` (one host's loop: jittered interval,
backoff through outages), ``simulate`` (N hosts in one process), ``runner`` (the
process's life: signals, stats at exit).
"""
