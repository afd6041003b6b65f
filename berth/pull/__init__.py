"""Pull-based dispatch (docs/pull.md): requests queued per flavor, hosts take their work.

The database is the truth for capacity, quota and every instance's state;
NATS JetStream only carries the work.  The stages, each one transaction::

    requests   enqueue: quota reserved (one reservation per instance), request
               and instance rows; show; delete
    claims     a host's batch: the write engine's allocation write (capacity,
               generation swap, host rules, server-group rule), the state swap,
               the reservations consumed
    agents     heartbeats; instances booted (active); instances deleted
    sweeper    republish, requeue a dead host's claims, time out, purge

around them: ``model`` (states, names, messages), ``instances`` (rows and
their compare-and-swap), ``queues`` (the queue manager), ``outbox`` (messages
sent after the commit), ``bus`` (the process's NATS connection), ``runtime``
(``Pull``: what one process owns, built by ``berth.services.Services``).

Errors are ``berth.placement.errors``: ``InvalidInput`` (unknown flavor,
capability, server group), ``NotFound`` (unknown request), ``Conflict`` /
``QuotaExceeded`` (over quota), ``ConcurrentUpdate`` (a lost swap: run
again), ``Unavailable`` (NATS cannot be reached; the callers here never let
it fail a committed write).
"""
