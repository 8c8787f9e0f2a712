"""The FAB of bench/scale.py: Sangsaeng's own ServerApp and ClientApp, for Flower's
simulation engine.

The simulation engine gives each virtual SuperNode only the node config
{"partition-id", "num-partitions"}; a real SuperNode's operator sets {"policy": path}. So
the ClientApp here finds virtual partner i's policy at `<policy-dir>/<i>.policy.toml`
(policy-dir from the run config) and hands the message to the real ClientApp with that
node config, the node's own state (kept across rounds, as on a SuperNode) and the run
config. Nothing else differs: the ServerApp is the real one, unwrapped.
"""

from __future__ import annotations

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.common.constant import PARTITION_ID_KEY

from sangsaeng.client.client_app import app as partner_app
from sangsaeng.server.flower.server_app import app as server  # noqa: F401  (the FAB's serverapp)
from sangsaeng.shared.wire import NODE_CONFIG_POLICY

POLICY_DIR_KEY = "policy-dir"

client = ClientApp()


@client.train()
@client.evaluate()
def virtual_partner(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)  # one Ray actor per core: more threads only contend
    policy = f"{context.run_config[POLICY_DIR_KEY]}/{context.node_config[PARTITION_ID_KEY]}"
    return partner_app(msg, Context(
        run_id=context.run_id, node_id=context.node_id, state=context.state,
        node_config={NODE_CONFIG_POLICY: f"{policy}.policy.toml"},
        run_config=context.run_config))
