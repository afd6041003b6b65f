"""What the fault tests expect of a 503 answered for an unavailable database."""

from __future__ import annotations

from typing import Any

RETRY_AFTER = "2"  # BERTH_DATABASE_RETRY_AFTER's default


def assert_unavailable(
    answer: Any, words: str, took: float | None = None, bound: float = 0.0
) -> None:
    """``answer`` (a Falcon test result) is a 503 with Retry-After whose detail says ``words``.

    With ``took``: it came within ``bound`` seconds (a lock wait retried
    in place, or a hang, would take longer).
    """
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == RETRY_AFTER
    assert words in answer.json["errors"][0]["detail"]
    if took is not None:
        assert took < bound, f"{took:.1f}s: more than {bound}s for a 503"
