"""The coordinator's database: tables (tables.py), the engine (engine.py), the schema's
revisions and their migrations (schema.py, schema_lock.py, migrations/), the Store that
opens it (store.py), and one module of queries per aggregate."""

from .schema import StoreSchemaError
from .store import Store

__all__ = ["Store", "StoreSchemaError"]
