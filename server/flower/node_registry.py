"""The SuperLink lets in exactly the registered partners' node keys.

With `--enable-supernode-auth` a SuperNode may connect only once its public key is
registered through the Control API. The store's partners table is the one list the
operator edits (`sangsaeng admin partner add / remove`); this keeps the SuperLink in step
with it, and records the node id each key got, by which the ServerApp knows whose reply
is whose. Removing a partner unregisters its node: its next request is refused.
"""

from __future__ import annotations

import logging

import httpx

from sangsaeng.server.db import Store
from sangsaeng.shared.node_keys import NodeKeyError, from_pem, to_pem

from .control import FlowerControl

log = logging.getLogger(__name__)
UNREGISTERED = "unregistered"


def sync_nodes(store: Store, control: FlowerControl) -> None:
    wanted = {p.node_key: p for p in store.partners.list()
              if p.node_key is not None and p.removed_at is None}
    registered: dict[str, int] = {}
    for node in control.nodes():
        if node.status == UNREGISTERED:
            continue
        try:
            key = from_pem(node.public_key)
        except NodeKeyError:
            key = ""  # not a node key a partner could hold: never wanted
        if key in wanted:
            registered[key] = node.node_id
        else:
            control.unregister_node(node.node_id)
            log.info("node %s unregistered: no active partner holds its key", node.node_id)
    for key, partner in wanted.items():
        node_id = registered.get(key)
        if node_id is None:
            try:
                node_id = control.register_node(to_pem(key), partner.name)
            except httpx.HTTPStatusError as err:  # e.g. a key revoked before: one partner
                _warn_once(partner.name, key, err)  # must not keep the others out
                continue
            log.info("partner '%s' registered as node %s", partner.name, node_id)
        if partner.node_id != str(node_id):
            store.partners.set_node_id(partner.name, str(node_id))


_warned: set[tuple[str, str]] = set()


def _warn_once(partner: str, key: str, err: httpx.HTTPStatusError) -> None:
    if (partner, key) not in _warned:
        _warned.add((partner, key))
        log.warning("the SuperLink refused to register partner '%s''s node key (%s): %s",
                    partner, err.response.status_code, err.response.text[:200])
