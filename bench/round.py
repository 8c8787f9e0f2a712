"""Round latency: Sangsaeng against a bare Flower FedAvg app (bench/bare_flower_app.py), on
one SuperLink with 3 partner SuperNodes on loopback, in one run.

    .venv/bin/python bench/round.py [--runs 3] [--rounds 4]

Both apps run the demo's task (Caravan, the demo's MLP) on the same partners' data.
Sangsaeng's ServerApp pulls replies every 0.1 s (server/flower/grid.py) where Flower's
Grid sleeps 3 s between pulls, so the bare app runs twice: as written, and with that same
reply loop; against the latter, Sangsaeng differs only in what it does on top of Flower
(its DP-SGD step instead of autograd SGD, policy, ledger, accounting, store). The three
take turns, after one warm-up run of each. A round's time is the run's time on the
SuperLink (its ServerApp running until finished) over its rounds. Then where the time
goes: every message runs in a fresh `flwr-clientapp` process (Flower starts one per
message), so each ClientApp's import and its handler's first call are timed in fresh
processes too; the store's writes per round are timed on their own; the rest is Flower
(the SuperNode's 3 s idle poll, transport, process start) and 3 partners sharing 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PARTNERS = ["north-bank", "south-insurance", "east-mutual"]
BENCH = Path(__file__).resolve().parent
SANGSAENG, BARE, BARE_PROMPT = "Sangsaeng", "bare Flower", "bare Flower, 0.1 s reply loop"
APPS = (SANGSAENG, BARE, BARE_PROMPT)
MODULES = {SANGSAENG: ("sangsaeng.client.client_app", "sangsaeng.server.flower.server_app"),
           BARE: ("bare_flower_app", "bare_flower_app")}


@dataclass(frozen=True)
class Setup:
    workdir: Path
    task_json: str
    policies: list[Path]
    data: list[Path]


def prepare(workdir: Path, rounds: int) -> Setup:
    from sangsaeng.client.ledger import init_ledger
    from sangsaeng.client.policy import PartnerPolicy
    from sangsaeng.demo.data import (
        default_task_path,
        public_rows,
        write_partitions,
        write_policy,
        write_schema,
    )
    from sangsaeng.shared.task import TaskSpec, load_task

    task = TaskSpec.from_dict({**load_task(default_task_path()).model_dump(),
                               "rounds": rounds, "min_nodes": len(PARTNERS)})
    data = write_partitions(PARTNERS, workdir / "partners")
    schema = write_schema(workdir / "caravan.catalogue.json", task, data)
    policies = [write_policy(workdir / "partners" / f"{name}.policy.toml", name, task.dataset,
                             path, 1000.0, schema, public_rows(path))
                for name, path in zip(PARTNERS, data, strict=True)]
    for policy in policies:
        init_ledger(PartnerPolicy.load(policy), task.dataset)
    return Setup(workdir, task.to_json(), policies, data)


def round_times(setup: Setup, repeats: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each app's runs (running → finished on the SuperLink)."""
    from bare_flower_app import PROMPT_REPLIES_KEY
    from flwr.cli.build import build_fab_from_files

    from sangsaeng.server.db import Store
    from sangsaeng.server.deployment.flower_processes import LocalDeployment, PartnerNode
    from sangsaeng.server.flower.control import FlowerControl, wait_for_run
    from sangsaeng.server.runs import lifecycle
    from sangsaeng.server.runs.states import COMPLETED
    from sangsaeng.shared.task import TaskSpec
    from sangsaeng.shared.wire import RUN_CONFIG_TASK

    class Node(PartnerNode):  # the bare app reads its data file from the node config
        def node_config(self) -> str:
            data = setup.data[PARTNERS.index(self.partner)].resolve()
            return f'{super().node_config()} data="{data}"'

    task = TaskSpec.from_json(setup.task_json)
    store_url = f"sqlite:///{setup.workdir / 'store.db'}"
    store = Store(store_url)
    bare_fab, _ = build_fab_from_files({
        "pyproject.toml": (BENCH / "bare_flower_app.toml").read_bytes(),
        "bare_flower_app.py": (BENCH / "bare_flower_app.py").read_bytes()})
    fab = (bare_fab, hashlib.sha256(bare_fab).hexdigest())
    times: dict[str, list[float]] = {app: [] for app in APPS}
    nodes: list[PartnerNode] = [Node(name, path)
                                for name, path in zip(PARTNERS, setup.policies, strict=True)]
    # Stock SuperNodes: a pinned one (sangsaeng client node) would refuse the bare app.
    with LocalDeployment(setup.workdir / "flower", store_url, nodes, pinned=False) as deployment:
        control = FlowerControl(deployment.address)
        start = {SANGSAENG: lambda: int(lifecycle.start(store, control, task, None)
                                        .flower_run_id or 0),
                 BARE: lambda: control.start_app(fab, {RUN_CONFIG_TASK: setup.task_json,
                                                       PROMPT_REPLIES_KEY: False}),
                 BARE_PROMPT: lambda: control.start_app(fab, {RUN_CONFIG_TASK: setup.task_json,
                                                              PROMPT_REPLIES_KEY: True})}
        for turn in range(repeats + 1):  # the first turn warms up (FAB install, connections)
            for name in APPS[turn % 3:] + APPS[:turn % 3]:  # each app first in turn
                status = wait_for_run(control, start[name](), timeout=60 + 60 * rounds)
                if status.sub_status != "completed":
                    raise RuntimeError(f"a {name} run ended {status.sub_status}: "
                                       f"{status.details}; logs in {setup.workdir}")
                assert status.running_at and status.finished_at
                seconds = (status.finished_at - status.running_at).total_seconds() / rounds
                label = "warm-up" if turn == 0 else f"turn {turn}"
                print(f"  {label}: {name} {seconds:.2f} s/round", flush=True)
                if turn:
                    times[name].append(seconds)
        control.close()
    if any(run.status != COMPLETED for run in store.runs.list()):
        raise RuntimeError("a Sangsaeng run is not recorded as completed")
    return times


def _import_seconds(module: str) -> float:
    """A fresh interpreter importing `module`, as a flwr-clientapp process does."""
    code = (f"import sys, time; sys.path.insert(0, {str(BENCH)!r}); t = time.perf_counter(); "
            f"import {module}; print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)


def _first_call_seconds(app: str, kind: str, setup: Setup, run_id: int) -> float:
    """In a fresh process (this function runs in one): the app's handler for one
    message, first call, as Flower's per-message process makes it."""
    sys.path.insert(0, str(BENCH))
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from sangsaeng.shared.models import build_model
    from sangsaeng.shared.task import TaskSpec

    module = __import__(MODULES[app][0], fromlist=["train"])
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = run_id, 0, 1
    task = TaskSpec.from_json(setup.task_json)
    msg = Message(RecordDict({"arrays": ArrayRecord(build_model(task, seed=task.seed).state_dict()),
                              "config": ConfigRecord({"server-round": 1})}),
                  dst_node_id=1, message_type=kind)
    context = Context(run_id=run_id, node_id=1, state=RecordDict(), run_config={
        "task": setup.task_json}, node_config={"policy": str(setup.policies[0]),
                                               "data": str(setup.data[0])})
    start = time.perf_counter()
    reply = getattr(module, kind)(msg, context)
    seconds = time.perf_counter() - start
    if reply.has_error():
        raise RuntimeError(f"{app} {kind}: {reply.error.reason}")
    return seconds


def store_seconds(setup: Setup, rounds: int = 20) -> float:
    """What the ServerApp writes per round beyond FedAvg: the partners' privacy reports
    and the round's record (train and evaluate)."""
    from sangsaeng.server.db import Store
    from sangsaeng.server.runs import lifecycle
    from sangsaeng.shared.accounting import PrivacyReport
    from sangsaeng.shared.task import TaskSpec

    store = Store(f"sqlite:///{setup.workdir / 'store-writes.db'}")
    run_id = lifecycle.create(store, TaskSpec.from_json(setup.task_json), None)
    report = PrivacyReport(partner="p", dataset="caravan", noise_multiplier=1.0,
                           sample_rate=0.05, steps=40, evaluation_noise_multiplier=1e6,
                           trained_parameters=100, delta=1e-5, epsilon=1.0,
                           lifetime_epsilon=1.0, epsilon_cap=10.0, ledger_seq=2,
                           ledger_hash="0" * 64)
    seconds = []
    for round_ in range(1, rounds + 1):
        start = time.perf_counter()
        store.privacy.add(run_id, round_, [(node, report) for node in (1, 2, 3)])
        store.runs.record_round(run_id, round_, trained_nodes=3, partner_errors=[])
        store.runs.record_round(run_id, round_, evaluated_nodes=3, metrics={"auc": 0.7})
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def breakdown(setup: Setup, reps: int) -> dict[str, dict[str, float]]:
    """Median seconds of each part, per app."""
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per call
    parts: dict[str, dict[str, float]] = {}
    for app, (client_module, server_module) in MODULES.items():
        calls = {}
        for kind in ("train", "evaluate"):
            samples = []
            for rep in range(reps):
                with spawn.Pool(1) as pool:
                    samples.append(pool.apply(_first_call_seconds,
                                              (app, kind, setup, 1000 + rep)))
            calls[kind] = statistics.median(samples)
        parts[app] = {
            "ClientApp import": statistics.median(_import_seconds(client_module)
                                                  for _ in range(reps)),
            "train handler": calls["train"],
            "evaluate handler": calls["evaluate"],
            "ServerApp import (once a run)": statistics.median(
                _import_seconds(server_module) for _ in range(reps)),
        }
    parts[SANGSAENG]["store writes"] = store_seconds(setup)
    parts[BARE]["store writes"] = 0.0
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each app, in turns")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5, help="fresh processes per part")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sangsaeng-bench-round-"))
    setup = prepare(workdir, args.rounds)
    print(f"{len(PARTNERS)} SuperNodes on loopback, demo task with {args.rounds} rounds; "
          f"{args.runs} runs of each app after a warm-up; work in {workdir}", flush=True)
    times = round_times(setup, args.runs, args.rounds)
    parts = breakdown(setup, args.reps)
    rounds = {app: statistics.median(t) for app, t in times.items()}
    parts[BARE_PROMPT] = parts[BARE]  # the same app; only its ServerApp's reply loop differs
    per_round = {app: {"ClientApp imports (train + evaluate)": 2 * p["ClientApp import"],
                       "train handler": p["train handler"],
                       "evaluate handler": p["evaluate handler"],
                       "store writes": p["store writes"],
                       "ServerApp import / rounds":
                           p["ServerApp import (once a run)"] / args.rounds}
                 for app, p in parts.items()}
    rest = {app: rounds[app] - sum(per_round[app].values()) for app in APPS}

    def row(label: str, values: dict[str, float], digits: int) -> str:
        return f"| {label} | " + " | ".join(f"{values[app]:.{digits}f}" for app in APPS) + " |"

    print(f"\n| per round, median (s) | {' | '.join(APPS)} |")
    print("|---|" + "--:|" * len(APPS))
    print(row("**wall time**", rounds, 2))
    for part in per_round[SANGSAENG]:
        print(row(part, {app: per_round[app][part] for app in APPS}, 3))
    # the parts were timed one partner at a time; a round runs 3 at once on this machine's
    # cores, so the rest also holds their contention (and can come out below zero)
    print(row("rest: Flower's polling, transport, process start, 3 partners sharing the "
              "CPU", rest, 2))
    print("\nruns (s/round): " + "; ".join(
        f"{app} {', '.join(f'{t:.2f}' for t in times[app])}" for app in APPS))
    print(f"round time {SANGSAENG}/{BARE}: {rounds[SANGSAENG] / rounds[BARE]:.3f}")
    print(f"round time {SANGSAENG}/{BARE_PROMPT} (the same reply loop: only what Sangsaeng "
          "does differently — its DP-SGD step instead of autograd SGD, policy, ledger, "
          "accounting, store): "
          f"{rounds[SANGSAENG] / rounds[BARE_PROMPT]:.3f}")


if __name__ == "__main__":
    main()
