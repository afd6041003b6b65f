"""``berth import``: copy an OpenStack Placement database into berth's.

berth's tables mirror Placement's (``berth.db.tables``), so the copy is row
for row, in dependency order, all in ONE transaction (an interrupted or
refused import leaves berth's database as it was):

* resource classes and traits map by name: standard ones already exist in
  berth (under berth's ids), custom ones are created (keeping their
  Placement id when it is free); inventories, allocations and provider
  traits are rewritten to berth's ids;
* everything else (providers, aggregates, projects, users, consumer types,
  consumers, inventories, allocations) keeps its Placement id, generation
  and timestamps, so the copy answers every GET exactly as the source did;
* providers are inserted parents first (PostgreSQL and MariaDB check the
  tree's foreign keys row by row);
* on PostgreSQL the id sequences are moved past the copied ids;
* a final change-log entry tells running berth workers to reload;
* a row that cannot be copied (an allocation or inventory of a class, or a
  provider trait, that cannot be mapped; an aggregate without a uuid) rolls
  the whole import back (``ImportIncomplete``, the rows listed), unless
  ``allow_partial`` accepts losing them.

berth refuses to import into a database that already holds providers,
consumers or custom classes/traits.  ``force`` first deletes berth's
providers, consumers, allocations, aggregates and custom classes/traits
(standard ones stay), so the result is again an exact copy: a failed or
outdated import is redone by running it again with ``force``.
"""

from __future__ import annotations

from berth.importer.copy import ImportReport, run
from berth.importer.source import ImportIncomplete, ImportRefused, NoProgress, Progress

__all__ = ["ImportIncomplete", "ImportRefused", "ImportReport", "NoProgress", "Progress", "run"]
