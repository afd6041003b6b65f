"""What pull dispatch publishes on NATS, and what became of it: plain data, so that
modules building messages need not import NATS' client (:mod:`berth.pull.bus` does)."""

from __future__ import annotations

from dataclasses import dataclass

# What became of one published message: a stream stored it, a stream had it already (its
# Nats-Msg-Id within the duplicate window), or it was not stored (no ack).
STORED, DUPLICATE, FAILED = "stored", "duplicate", "failed"


@dataclass(frozen=True)
class Message:
    """One message to publish: subject, JSON bytes, and the id the stream deduplicates by."""

    subject: str
    data: bytes
    msg_id: str
