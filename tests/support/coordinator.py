"""Partners joining a test's Coordinator as real ones do, and clients that trust its CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.deployment.flower_processes import PartnerNode
from sangsaeng.shared.node_keys import create_node_key, node_public_key
from sangsaeng.shared.signing import create_key, load_key, public_key_of


def partner_keys(policy_path: Path) -> tuple[str, str]:
    """(signing key, node key) public halves of a partner, made on first use as the
    partner would (`sangsaeng client key create`, `sangsaeng client node-key create`)."""
    policy = PartnerPolicy.load(policy_path)
    signing, node = policy.signing_key_path(), policy.node_key_path()
    return (public_key_of(load_key(signing)) if signing.exists() else create_key(signing),
            node_public_key(node) if node.exists() else create_node_key(node))


def join(coordinator: Coordinator, name: str, policy_path: Path) -> PartnerNode:
    """Register the partner's keys (the operator's part), then start its node."""
    signing, node = partner_keys(policy_path)
    coordinator.store.partners.put(name, signing, node, replace=True)
    partner = PartnerNode(name, policy_path)
    coordinator.add_partner(partner)
    return partner


def verify(coordinator: Coordinator) -> ssl.SSLContext:
    """What a client of this coordinator's API or Fleet proxy verifies its certificate with."""
    return ssl.create_default_context(cafile=coordinator.ca_file)
