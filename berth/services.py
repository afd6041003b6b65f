"""The long-lived objects a worker process shares across requests."""

from __future__ import annotations

from dataclasses import dataclass

from berth import metrics
from berth.db.engine import Database
from berth.policy import Enforcer, load_overrides
from berth.settings import Settings


@dataclass
class Services:
    """Settings, the database and the policy enforcer of one process."""

    settings: Settings
    db: Database
    enforcer: Enforcer

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build the services a worker needs from its settings."""
        db = Database(settings.effective_database_url)
        metrics.instrument_pool(db.engine)
        return cls(
            settings=settings,
            db=db,
            enforcer=Enforcer(
                enforce_new_defaults=settings.enforce_new_defaults,
                overrides=load_overrides(settings.policy_file),
            ),
        )
