"""Opening the store: ``open_store(location)``, and ``check_location`` for the config.

``location`` is a SQLite file path (``:memory:`` for none; store_sqlite.py, the default) or a
``postgresql://`` / ``postgres://`` URL (store_postgres.py, for gateways on several machines).
What a store holds and promises (rows, owners, durability, orphans) is in store_contract.py.
"""

from __future__ import annotations

from reference_gateway.store_contract import ResponseStore
from reference_gateway.store_sqlite import SQLiteStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def check_location(location: str) -> None:
    """ValueError unless ``location`` names a store ``open_store`` can open."""
    if not isinstance(location, str) or not location:
        raise ValueError("the store must be a SQLite file path or a postgresql:// URL")
    if "://" in location and not location.startswith(POSTGRES_SCHEMES):
        scheme = location.split("://", 1)[0]
        raise ValueError(f"unsupported store URL scheme {scheme!r}: give a SQLite file path or a postgresql:// URL")


def open_store(location: str) -> ResponseStore:
    """A SQLite path (or ``:memory:``) or a ``postgresql://`` URL -> its store, schema ready."""
    check_location(location)
    if location.startswith(POSTGRES_SCHEMES):
        # Deferred: psycopg is an optional dependency, needed only for a postgresql:// store.
        from reference_gateway.store_postgres import PostgresStore

        return PostgresStore(location)
    return SQLiteStore(location)
