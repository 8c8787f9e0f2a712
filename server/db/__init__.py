"""The coordinator's database: tables (tables.py), the engine and schema check
(store.py), and one module of queries per aggregate."""

from .store import Store, StoreSchemaError

__all__ = ["Store", "StoreSchemaError"]
