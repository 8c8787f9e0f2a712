"""The baseline of bench/round.py: a bare Flower FedAvg app, as a startup would write one.

Same model, same partner data, same rounds, local epochs, batch size and learning rate
as Sangsaeng's task, and Flower's own FedAvg loop; no policy, no ledger, no privacy
accounting, no store, and plain SGD over shuffled batches instead of DP-SGD. It uses
Sangsaeng's task file only to read the data and build the model, so the two runs do the
same work apart from what Sangsaeng adds. Shipped to the SuperNodes inside its own FAB.
With the run config `prompt-replies = true` its ServerApp pulls replies as Sangsaeng's
does (server/flower/grid.py), so that the two differ only in what Sangsaeng adds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from sangsaeng.client.data import LocalData, load_local_data
from sangsaeng.server.flower.grid import PromptGrid
from sangsaeng.shared.models import build_model
from sangsaeng.shared.task import TaskSpec

BENCH_HOLDOUT_KEY = "00" * 16  # the bare app's holdout split needs a key; any will do
DATA_NODE_CONFIG_KEY = "data"  # the partner's data file, in the SuperNode's node config
PROMPT_REPLIES_KEY = "prompt-replies"  # run config: pull replies as Sangsaeng does

client = ClientApp()
server = ServerApp()


def _task(context: Context) -> TaskSpec:
    return TaskSpec.from_run_config(dict(context.run_config))


def _setup(msg: Message, context: Context) -> tuple[TaskSpec, LocalData, torch.nn.Module]:
    task = _task(context)
    data = load_local_data(Path(str(context.node_config[DATA_NODE_CONFIG_KEY])), task,
                           BENCH_HOLDOUT_KEY, 0.2)
    model = build_model(task)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    return task, data, model


@client.train()
def train(msg: Message, context: Context) -> Message:
    task, data, model = _setup(msg, context)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    optimizer = torch.optim.SGD(model.parameters(), lr=task.learning_rate)
    assert task.local_epochs and task.batch_size, "a task with its batch and epochs fixed"
    for _ in range(task.local_epochs):
        for rows in torch.randperm(len(y)).split(task.batch_size):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
            optimizer.step()
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()),
                               "metrics": MetricRecord({"num-examples": len(y)})}),
                   reply_to=msg)


@client.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    _, data, model = _setup(msg, context)
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x_holdout))
        labels = torch.from_numpy(data.y_holdout)
        metrics = {"loss": torch.nn.functional.cross_entropy(logits, labels).item(),
                   "accuracy": (logits.argmax(1) == labels).float().mean().item()}
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": len(labels),
                                                        **metrics})}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    task = _task(context)
    nodes = task.min_nodes
    strategy = FedAvg(min_train_nodes=nodes, min_evaluate_nodes=nodes,
                      min_available_nodes=nodes)
    initial = ArrayRecord(build_model(task, task.seed).state_dict())
    if context.run_config[PROMPT_REPLIES_KEY]:
        grid = PromptGrid(grid)
    strategy.start(grid=grid, initial_arrays=initial, num_rounds=task.rounds,
                   timeout=task.round_timeout)
