"""The wire contract between the coordinator's ServerApp and the partners' ClientApps:
every key either side reads or writes in Flower's messages, run config and node config
(as Flower keeps its own in flwr/common/constant.py). Change one here, and both sides
and the FAB change together.
"""

from __future__ import annotations

# A message's RecordDict: the model (ArrayRecord), the round's config (ConfigRecord),
# aggregates (MetricRecord) and a partner's privacy report (ConfigRecord, a PrivacyReport).
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
PRIVACY = "privacy"

SERVER_ROUND = "server-round"  # in CONFIG: which round a train or evaluate message is
NUM_EXAMPLES = "num-examples"  # in METRICS: the (rounded) count FedAvg weights by

# The run config, set per run by the coordinator (the FAB's [tool.flwr.app.config]).
RUN_CONFIG_TASK = "task"  # the TaskSpec as JSON
RUN_CONFIG_STORE_RUN = "sangsaeng-run"  # the coordinator store's run id
RUN_CONFIG_DEFAULTS: dict[str, str | int] = {RUN_CONFIG_TASK: "", RUN_CONFIG_STORE_RUN: 0}

# The node config, set by the partner on its own SuperNode (--node-config).
NODE_CONFIG_POLICY = "policy"  # the path of the partner's policy file

# Round 0 is the base model's evaluation by every partner, before the first training round.
BASE_ROUND = 0
