"""Which database errors count as transient (worth retrying / answering 409)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from berth.db.engine import is_transient, normalise_url


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("pg")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (_PgError("40001"), True),  # serialization failure
        (_PgError("40P01"), True),  # deadlock detected
        (_PgError("23505"), False),  # unique violation is not transient here
        (Exception(1213, "Deadlock found"), True),  # MariaDB / Galera certification
        (Exception(1205, "Lock wait timeout exceeded"), True),
        (Exception(1062, "Duplicate entry"), False),
        (Exception("database is locked"), True),
        (Exception("no such table: x"), False),
    ],
)
def test_is_transient(orig: Exception, expected: bool) -> None:
    assert is_transient(DBAPIError("stmt", {}, orig)) is expected


@pytest.mark.parametrize(("first", "expected"), [(1213, True), (1062, False), (None, False)])
def test_a_savepoint_lost_to_a_deadlock_is_transient(first: int | None, expected: bool) -> None:
    """A deadlock (Galera: a brute-force abort) inside ``begin_nested`` rolls the whole
    transaction back: rolling back to the savepoint then fails with 1305."""
    gone = DBAPIError("ROLLBACK TO SAVEPOINT sa_savepoint_1", {}, Exception(1305, "gone"))
    if first is not None:
        driver_error = Exception(1305, "SAVEPOINT sa_savepoint_1 does not exist")
        driver_error.__context__ = DBAPIError("INSERT", {}, Exception(first, "first"))
        gone.__context__ = driver_error
    assert is_transient(gone) is expected


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mysql+pymysql"),
        ("sqlite:///x.sqlite", "sqlite"),
    ],
)
def test_bare_urls_get_berths_drivers(url: str, driver: str) -> None:
    assert normalise_url(url).startswith(driver + ":")
