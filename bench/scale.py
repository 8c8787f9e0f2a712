"""How one Sangsaeng run scales with the number of partners, in Flower's simulation engine.

    .venv/bin/python bench/scale.py [--partners 10,100,1000] [--rounds 2]

For each partner count: a fresh SuperLink on loopback started with --simulation (a
LocalDeployment, as `sangsaeng server` starts one, so the ServerApp writes to a real
store), sized by the Control API to that many virtual SuperNodes, one Ray actor per core;
then one run of Sangsaeng's own ServerApp and ClientApp (bench/sim_app.py: the real apps;
the ClientApp only maps each virtual node to its partner's policy file) on the demo's
task, started as the coordinator starts runs (a store record, then Flower's StartRun).
Needs flwr[simulation] (Ray; in the dev extra).

Data: each partner holds 1,000 rows sampled (seeded by partner) from the demo's real
table, Caravan (5,822 rows, from the ISLP wheel), as CSV: partners overlap, so this
measures cost, not learning. Policies are the demo's (ε cap 10), each partner with a
fresh ledger. The task is the demo's (sangsaeng/demo/caravan.toml) with `--rounds` rounds,
min_nodes = partners and a one-hour round timeout. Afterwards the store must say the run
completed with every partner trained and evaluated in every round, or the script fails.

Measured, from the store's and the SuperLink's own timestamps: round 1 from the run's
start on the SuperLink (Ray's start and its actors' first imports included) to the last
privacy report of round 1; every later round from the previous round's last privacy
report to its own (so the previous round's evaluation counts); and the whole run.
Memory and CPU: the SuperLink's process tree (the SuperLink; flwr-simulation, the
"driver", which runs the ServerApp and Flower's message pump; Ray's gcs_server, raylet,
agents and workers), sampled every 0.25 s by parent pid from /proc: peak sum of RSS
(/proc/PID/statm; counts shared pages such as torch's libraries once per process) and of
PSS (smaps_rollup, every 2 s, as reading it costs ~3 ms a process; shares them out, the
closer figure for what the machine spends), and CPU seconds (utime + stime) of the
driver and of everything else.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

BENCH = Path(__file__).resolve().parent
ROWS_PER_PARTNER = 1000
SAMPLE_SECONDS, PSS_EVERY = 0.25, 8  # RSS 4 times a second, PSS every 2 s
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
# Ray and Flower would phone home (no internet here); Ray's default worker niceness of 15
# lets the driver's polling loop out-rank the ClientApps' actors.
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "FLWR_TELEMETRY_ENABLED": "0",
       "RAY_worker_niceness": "0"}


@dataclass
class Tree:
    """Peaks and CPU of a process tree, from repeated samples of /proc."""

    root: int
    rss: int = 0
    pss: int = 0
    samples: int = 0
    cpu: dict[int, int] = field(default_factory=dict)  # pid -> utime + stime (ticks)
    names: dict[int, str] = field(default_factory=dict)

    def sample(self) -> None:
        procs = _procs()
        tree, todo = [], [self.root]
        while todo:
            tree.append(pid := todo.pop())
            todo.extend(p for p, (ppid, _, _) in procs.items() if ppid == pid)
        self.rss = max(self.rss, sum(_number(f"/proc/{p}/statm", 1) * PAGE for p in tree))
        if self.samples % PSS_EVERY == 0:  # smaps_rollup walks page tables: ~3 ms a process
            self.pss = max(self.pss, sum(_number(f"/proc/{p}/smaps_rollup", 1, "Pss:") * 1024
                                         for p in tree))
        self.samples += 1
        for p in tree:
            if p in procs:
                self.cpu[p], self.names[p] = procs[p][1], procs[p][2]

    def cpu_seconds(self, name: str) -> tuple[float, float]:
        """CPU seconds of the processes called `name`, and of all the others."""
        mine = sum(t for p, t in self.cpu.items() if self.names[p] == name)
        return mine / TICK, (sum(self.cpu.values()) - mine) / TICK


def _procs() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, CPU ticks used, command name) of every process."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:  # the name may hold spaces and parentheses: fields follow the last ')'
                head, tail = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)
                f = tail.split()
                procs[int(entry)] = (int(f[1]), int(f[11]) + int(f[12]),
                                     head.split("(", 1)[1])
            except (OSError, IndexError, ValueError):
                continue  # it ended meanwhile
    return procs


def _number(path: str, field: int, prefix: str = "") -> int:
    """The `field`-th number of the first line starting with `prefix` (0 if gone)."""
    try:
        with open(path) as f:
            line = next(line for line in f if line.startswith(prefix))
        return int(line.split()[field])
    except (OSError, StopIteration, IndexError, ValueError):
        return 0  # the process ended meanwhile


def write_partners(work: Path, partners: int) -> None:
    """Each partner's data: ROWS_PER_PARTNER rows of Caravan, shared by every run."""
    import pandas as pd

    from sangsaeng.demo.data import caravan_path

    table = pd.read_csv(caravan_path())
    (work / "data").mkdir(exist_ok=True)
    for p in range(partners):
        table.sample(ROWS_PER_PARTNER, random_state=p).to_csv(work / "data" / f"{p}.csv",
                                                               index=False)


def measure(partners: int, rounds: int, work: Path) -> dict[str, object]:
    """One run of `partners` virtual partners on a fresh simulation SuperLink."""
    from flwr.cli.build import build_fab_from_files

    from sangsaeng.client.ledger import init_ledger
    from sangsaeng.client.policy import PartnerPolicy
    from sangsaeng.demo.data import (
        default_task_path,
        public_rows,
        write_policy,
        write_schema,
    )
    from sangsaeng.server.db import Store
    from sangsaeng.server.deployment.flower_processes import LocalDeployment
    from sangsaeng.server.flower.control import FlowerControl, wait_for_run
    from sangsaeng.server.runs import lifecycle
    from sangsaeng.server.runs.states import COMPLETED
    from sangsaeng.shared.task import TaskSpec, load_task
    from sangsaeng.shared.wire import RUN_CONFIG_STORE_RUN, RUN_CONFIG_TASK

    here = work / f"n{partners}"
    task = TaskSpec.from_dict({**load_task(default_task_path()).model_dump(),
                               "rounds": rounds, "min_nodes": partners,
                               "round_timeout": 3600})
    schema = write_schema(here / "caravan.catalogue.json", task, [])
    for p in range(partners):  # virtual node i reads <policy-dir>/i.policy.toml
        data = work / "data" / f"{p}.csv"
        policy = write_policy(here / "policies" / f"{p}.policy.toml", f"partner-{p:04d}",
                              task.dataset, data, 10.0, schema, public_rows(data))
        init_ledger(PartnerPolicy.load(policy), task.dataset)
    fab, _ = build_fab_from_files({"pyproject.toml": (BENCH / "sim_app.toml").read_bytes(),
                                   "sim_app.py": (BENCH / "sim_app.py").read_bytes()})
    store_url = f"sqlite:///{here / 'store.db'}"
    store = Store(store_url)
    run_id = lifecycle.create(store, task, None)
    cpus = os.cpu_count() or 1
    with LocalDeployment(here / "flower", store_url, simulation=True) as deployment:
        control = FlowerControl(deployment.address)
        control.configure_simulation(partners, cpus_per_node=1, cpus=cpus)
        tree = Tree(deployment.processes[0].pid)
        flower_run = control.start_app((fab, hashlib.sha256(fab).hexdigest()), {
            RUN_CONFIG_TASK: task.to_json(), RUN_CONFIG_STORE_RUN: run_id,
            "policy-dir": str(here / "policies")})
        lifecycle.claim(store, run_id, flower_run)
        status = wait_for_run(control, flower_run, timeout=3600 * rounds,
                              on_poll=lambda _: tree.sample(), poll_seconds=SAMPLE_SECONDS)
        control.close()
    run = store.runs.get(run_id)
    problems = [] if run.status == COMPLETED else [f"run {run.status}: {run.reason}"]
    problems += [f"round {r.round}: {r.trained_nodes} trained, {r.evaluated_nodes} evaluated, "
                 f"errors {r.partner_errors[:3]}" for r in run.rounds
                 if (r.trained_nodes, r.evaluated_nodes) != (partners, partners)]
    if len(run.rounds) != rounds or len(run.privacy_reports) != partners * rounds:
        problems.append(f"{len(run.rounds)} rounds, {len(run.privacy_reports)} privacy reports")
    if problems or status.sub_status != "completed":
        raise SystemExit(f"{partners} partners: Flower says {status.sub_status} "
                         f"({status.details}); {problems}; logs in {here / 'flower'}")
    assert status.running_at and status.finished_at
    ends = [status.running_at] + [max(p.recorded_at for p in run.privacy_reports
                                      if p.round == r) for r in range(1, rounds + 1)]
    driver, others = tree.cpu_seconds("flwr-simulation")
    if not driver:
        raise SystemExit(f"no flwr-simulation process was seen; logs in {here / 'flower'}")
    return {"partners": partners, "rounds": rounds,
            "round_seconds": [(b - a).total_seconds()
                              for a, b in zip(ends, ends[1:], strict=False)],
            "wall": (status.finished_at - status.running_at).total_seconds(),
            "rss": tree.rss, "pss": tree.pss, "cpu_driver": driver, "cpu_rest": others}


def table(results: list[dict]) -> str:
    first = results[0]

    def grow(r: dict, key: str) -> str:
        return f" (×{r[key] / first[key]:.1f})" if r is not first else ""

    lines = ["| partners | rounds | round 1, with Ray's start (s) | later rounds (s) "
             "| run (s) | peak RSS (MiB) | peak PSS (MiB) | CPU s: driver / rest |",
             "|" + " ---: |" * 8]
    for r in results:
        later = r["round_seconds"][1:]
        lines.append(
            f"| {r['partners']:,} | {r['rounds']} | {r['round_seconds'][0]:.1f} "
            f"| {', '.join(f'{s:.1f}' for s in later) or '–'} "
            f"| {r['wall']:.1f}{grow(r, 'wall')} "
            f"| {r['rss'] / 2**20:,.0f}{grow(r, 'rss')} "
            f"| {r['pss'] / 2**20:,.0f}{grow(r, 'pss')} "
            f"| {r['cpu_driver']:,.0f} / {r['cpu_rest']:,.0f} |")
    return "\n".join(lines)


def machine() -> str:
    import flwr
    import ray
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.machine())
    ram = os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu}), {ram:.0f} GiB; Python {platform.python_version()}, "
            f"torch {torch.__version__}, flwr {flwr.__version__}, ray {ray.__version__}; "
            f"load average {os.getloadavg()[0]:.2f} at the start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partners", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.partners.split(",")]
    started, host = time.perf_counter(), machine()  # the load average before we start
    work = Path(tempfile.mkdtemp(prefix="sangsaeng-scale-"))
    os.environ.update({**ENV, "RAY_TMPDIR": str(work / "ray")})  # inherited by Flower's
    results = []
    try:
        write_partners(work, max(counts))
        for n in counts:
            print(f"  {n:,} partners × {args.rounds} rounds ({time.strftime('%H:%M:%S')})",
                  file=sys.stderr, flush=True)
            results.append(measure(n, args.rounds, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = [cast(list[float], r["round_seconds"]) for r in results]
    median_later = [statistics.median(s[1:] or s) for s in seconds]
    print(f"{host}\n\n{table(results)}\n\nlater rounds, median s per partner: "
          + ", ".join(f"{r['partners']:,}: {m / cast(int, r['partners']):.3f}"
                      for r, m in zip(results, median_later, strict=True))
          + f"\nwhole script: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
