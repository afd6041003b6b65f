"""Tables for people: what ``berth schedule`` prints."""

from __future__ import annotations

from rich.table import Table

from berth.db.engine import Database
from berth.scheduler import host_attributes
from berth.scheduler.answer import Answer
from berth.scheduler.explain import Explanation


def _amounts(allocation: dict[str, dict[str, int]]) -> str:
    return "; ".join(
        ",".join(f"{rc}={n}" for rc, n in resources.items()) for resources in allocation.values()
    )


def selections(answer: Answer, db: Database) -> Table:
    """One row per instance: chosen host, its allocation, the alternates."""
    uuids = [s.host_uuid for s in answer.selections]
    uuids += [a.host_uuid for s in answer.selections for a in s.alternates]
    with db.read() as conn:
        names = host_attributes.host_names(conn, uuids)
    title = "claimed" if answer.claimed else "dry run: nothing claimed"
    table = Table("instance", "host", "host uuid", "allocation", "alternates", title=title)
    for s in answer.selections:
        alternates = ", ".join(names.get(a.host_uuid) or a.host_uuid for a in s.alternates)
        table.add_row(
            s.instance_uuid,
            names.get(s.host_uuid) or "",
            s.host_uuid,
            _amounts(s.allocation),
            alternates or "-",
        )
    for instance in answer.failed:
        table.add_row(instance, "[red]no valid host[/red]", "", "", "")
    return table


def stages(explanation: Explanation) -> Table:
    """One row per stage: hosts in, hosts out, removals by reason."""
    table = Table("stage", "in", "out", "removed", title=explanation.summary())
    for row in explanation.report():
        removed = ", ".join(f"{n} {why}" for why, n in row["removed"].items())
        table.add_row(row["stage"], str(row["hosts_in"]), str(row["hosts_out"]), removed or "-")
    return table
