"""The coordinator's store: one database (SQLAlchemy, so the same code runs on SQLite, the
default, and PostgreSQL), its schema check, and its queries grouped by aggregate
(`store.runs`, `store.tokens`, ...). Every write is its own committed transaction, so what
a run did stays recorded if it later fails or dies. Run state changes are not here: they
are server/runs/lifecycle.py's alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import schema
from .audit_log import AuditLogQueries
from .base_models import BaseModelQueries
from .catalogue import CatalogueQueries
from .engine import store_engine
from .partners import PartnerQueries
from .privacy import PrivacyQueries
from .runs import RunQueries
from .tokens import TokenQueries
from .web_sessions import WebSessionQueries


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = store_engine(url)
        schema.check(self.engine)  # at the head revision, or refused (an empty one is made)
        self.runs = RunQueries(self.session)
        self.privacy = PrivacyQueries(self.session)
        self.tokens = TokenQueries(self.session)
        self.web_sessions = WebSessionQueries(self.session)
        self.catalogue = CatalogueQueries(self.session)
        self.partners = PartnerQueries(self.session)
        self.base_models = BaseModelQueries(self.session)
        self.audit_log = AuditLogQueries(self.session, threading.Lock())

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session
