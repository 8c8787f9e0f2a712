"""Queries of partners: the key their ledger exports are signed with, the node key their
SuperNode authenticates with, and the SuperLink node id that key was registered as."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .tables import Partner, Sessions, now


class PartnerKeyTaken(ValueError):
    """Another partner registered this node key, or it was revoked with its partner."""


class PartnerQueries:
    def __init__(self, session: Sessions) -> None:
        self.session = session

    def put(self, name: str, public_key: str, node_key: str | None = None,
            replace: bool = False) -> bool:
        """Register a partner's keys; False if it is registered and `replace` is not set.
        Replacing an active partner without a node key keeps the one it has; a node key
        unchanged keeps its node id (its node stays connected), a new one is registered
        afresh with the SuperLink (and the old one revoked)."""
        try:
            with self.session() as s:
                row = s.get(Partner, name)
                if row is not None and row.removed_at is None and not replace:
                    return False
                if row is not None and row.removed_at is not None and node_key == row.node_key \
                        and node_key is not None:
                    raise PartnerKeyTaken(  # the SuperLink keeps an unregistered key for good
                        f"this node key was revoked when partner '{name}' was removed: the "
                        "partner makes a new one (`sangsaeng client node-key create`, after "
                        "moving the old key file away)")
                node_id = None
                if row is not None and row.removed_at is None:  # an active partner
                    node_key = node_key or row.node_key
                    node_id = row.node_id if node_key == row.node_key else None
                s.merge(Partner(name=name, public_key=public_key, node_key=node_key,
                                node_id=node_id, registered_at=now(), removed_at=None))
        except IntegrityError:
            raise PartnerKeyTaken("another partner already registered this node key") from None
        return True

    def remove(self, name: str) -> bool:
        """Mark a partner removed (its node is then unregistered from the SuperLink); False
        if there is no such active partner. The row stays for the records that name it."""
        with self.session() as s:
            row = s.get(Partner, name)
            if row is None or row.removed_at is not None:
                return False
            row.removed_at = now()
            return True

    def get(self, name: str) -> Partner | None:
        with self.session() as s:
            return s.get(Partner, name)

    def list(self) -> list[Partner]:
        with self.session() as s:
            return list(s.scalars(select(Partner).order_by(Partner.name)))

    def admitted_node_keys(self) -> set[str]:
        """The node keys of partners not removed, once registered with the SuperLink (a
        node that dials before then is refused with a reason, and is started again)."""
        with self.session() as s:
            return set(s.scalars(select(Partner.node_key).where(
                Partner.node_key.is_not(None), Partner.node_id.is_not(None),
                Partner.removed_at.is_(None))))

    def set_node_id(self, name: str, node_id: str | None) -> None:
        with self.session() as s:
            row = s.get(Partner, name)
            if row is not None:
                row.node_id = node_id

    def by_node_id(self, node_id: int | str) -> Partner | None:
        """The partner whose registered node key the SuperLink gave this node id (removed
        partners included: a reply in flight when it was removed is still theirs)."""
        with self.session() as s:
            return s.scalars(select(Partner).where(Partner.node_id == str(node_id))).first()
