"""The store's partners: node keys are one partner's each, a removed one stays revoked, and
replacing a partner's other key leaves its node connected."""

from __future__ import annotations

from pathlib import Path

import pytest

from sangsaeng.server.db import Store
from sangsaeng.server.db.partners import PartnerKeyTaken
from sangsaeng.shared.node_keys import create_node_key

SIGNING = "k" * 44


def test_replacing_keeps_the_node_unless_its_key_changes(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    key, other = create_node_key(tmp_path / "a"), create_node_key(tmp_path / "b")
    assert store.partners.put("acme", SIGNING, key)
    assert not store.partners.put("acme", SIGNING, key)  # registered: --replace needed
    store.partners.set_node_id("acme", "42")
    assert store.partners.admitted_node_keys() == {key}
    store.partners.put("acme", "s" * 44, replace=True)  # the signing key only
    [row] = store.partners.list()
    assert (row.public_key, row.node_key, row.node_id) == ("s" * 44, key, "42")
    store.partners.put("acme", SIGNING, other, replace=True)  # a new node key: registered anew
    [row] = store.partners.list()
    assert (row.node_key, row.node_id) == (other, None)
    assert store.partners.admitted_node_keys() == set()


def test_a_node_key_is_one_partners_and_a_removed_one_stays_revoked(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    key = create_node_key(tmp_path / "a")
    store.partners.put("acme", SIGNING, key)
    with pytest.raises(PartnerKeyTaken, match="another partner"):
        store.partners.put("globex", SIGNING, key)
    store.partners.set_node_id("acme", "42")
    assert store.partners.remove("acme") and not store.partners.remove("acme")
    assert store.partners.admitted_node_keys() == set()
    assert store.partners.by_node_id(42) is not None  # its replies in flight are still its
    with pytest.raises(PartnerKeyTaken, match="revoked"):
        store.partners.put("acme", SIGNING, key, replace=True)
    assert store.partners.put("acme", SIGNING, create_node_key(tmp_path / "new"))
