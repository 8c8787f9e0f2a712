"""`sangsaeng demo`: a whole federated DP run on loopback, shown as a startup would see it.

Three partner SuperNodes each hold a private slice of a real insurance customer table
and their own privacy policy (a lifetime epsilon cap) and ledger; they train locally with
DP-SGD and send only clipped, noised updates; the SuperLink aggregates; every round and
privacy report lands in the SQLite store. The work directory persists, so a second demo
run continues from the partners' spending — until a partner's cap refuses a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sangsaeng.client.budget import DatasetBudget, dataset_budget
from sangsaeng.client.ledger import LedgerMissing
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.shared.task import TaskSpec, load_task

from .baseline import centralized_auc
from .control import FlowerControl, FlowerRunStatus, record_flower_end, wait_for_run
from .demo_data import caravan_columns, write_partitions, write_policy
from .deployment import LocalDeployment, PartnerNode
from .store import COMPLETED, Run, Store

# partner -> its lifetime epsilon cap on the dataset (its policy, not the task's)
PARTNERS = {"hanbit-bank": 10.0, "daehan-insurance": 10.0, "minjung-mutual": 6.0}
STOP_GRACE_SECONDS = 15


def default_task_path() -> Path:
    return Path(str(files("sangsaeng.server") / "tasks" / "caravan.toml"))


@dataclass
class DemoResult:
    run: Run
    flower_status: FlowerRunStatus
    baseline_auc: float | None
    model_path: Path | None
    store_url: str
    budgets: list[DatasetBudget]  # each partner's own view, from its ledger


def run_demo(workdir: Path, task_path: Path | None = None, store_url: str | None = None,
             console: Console | None = None) -> DemoResult:
    console = console or Console()
    task = load_task(task_path or default_task_path())  # a bad task stops here: nothing started
    workdir = workdir.resolve()
    store_url = store_url or f"sqlite:///{workdir / 'sangsaeng.db'}"
    store = Store(store_url)
    data_paths = write_partitions(list(PARTNERS), workdir / "partners")
    allowed = caravan_columns()  # every column of the table, but not the customer id
    partners = [
        PartnerNode(name, write_policy(workdir / "partners" / f"{name}.policy.toml", name,
                                       task.dataset, path, cap, allowed))
        for (name, cap), path in zip(PARTNERS.items(), data_paths, strict=True)
    ]
    console.print(f"[bold]Sangsaeng demo[/]: {len(partners)} partners hold private slices of "
                  f"'{task.dataset}'; task {task.sha256()[:12]} ({task.model.kind}, "
                  f"{task.rounds} rounds, σ={task.dp.noise_multiplier or 'from target ε'}, "
                  f"δ={task.dp.delta:g})")
    with LocalDeployment(workdir / "logs", store_url, partners) as deployment:
        console.print(f"SuperLink on {deployment.address}; SuperNodes: "
                      + ", ".join(p.partner for p in partners))
        control = FlowerControl(deployment.address)
        try:
            flower_run_id = control.start_run(task.to_json())
            try:
                status = _follow(control, store, flower_run_id, task, console)
            except BaseException:
                _stop(control, store, flower_run_id)  # Ctrl-C or time-out
                raise
        finally:
            control.close()
    run = record_flower_end(store, flower_run_id, status)
    if run is None:
        raise RuntimeError(f"the ServerApp never recorded run {flower_run_id}: {status.details}")
    model_path = None
    if run.model is not None:
        model_path = workdir / f"model-run{run.id}.safetensors"
        model_path.write_bytes(run.model)
    console.print("Centralized, non-private baseline (same model, pooled data)...")
    budgets = []
    for partner in partners:
        try:
            budgets.append(dataset_budget(PartnerPolicy.load(partner.policy_path), task.dataset))
        except LedgerMissing:  # refused before it ever reserved: nothing spent
            pass
    result = DemoResult(run, status, centralized_auc(task, data_paths), model_path, store_url,
                        budgets)
    _print_summary(result, console)
    return result


def _stop(control: FlowerControl, store: Store, flower_run_id: int) -> None:
    """Stop the run in Flower too, and make sure the store says how it ended, whether or
    not the ServerApp got to record it before its processes go."""
    control.stop_run(flower_run_id)
    try:
        status = wait_for_run(control, flower_run_id, timeout=STOP_GRACE_SECONDS)
    except TimeoutError:
        return
    record_flower_end(store, flower_run_id, status)


def _follow(control: FlowerControl, store: Store, flower_run_id: int, task: TaskSpec,
            console: Console) -> FlowerRunStatus:
    shown: set[int] = set()
    errors_shown: set[str] = set()
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} rounds"), TimeElapsedColumn(),
                        console=console)
    bar = progress.add_task(f"Flower run {flower_run_id}", total=task.rounds)

    def on_poll(status: FlowerRunStatus) -> None:
        run = store.run_by_flower_id(flower_run_id)
        if run is None:
            progress.update(bar, description=f"Flower run {flower_run_id}: {status.status}")
            return
        run = store.get_run(run.id)
        for row in run.rounds:
            for error in row.partner_errors:
                if error not in errors_shown:
                    errors_shown.add(error)
                    progress.console.print(f"[yellow]round {row.round}: {error}[/]")
            if row.round in shown or not row.evaluated_nodes:
                continue
            shown.add(row.round)
            m = row.metrics
            spent = "  ".join(f"{r.partner} {r.epsilon:.2f}/{r.lifetime_epsilon:.2f}"
                              for r in run.privacy_reports if r.round == row.round)
            progress.console.print(
                f"round {row.round}/{task.rounds}  accuracy {m.get('accuracy', float('nan')):.3f}"
                f"  AUC {_fmt(m.get('auc'))}  ε run/lifetime: {spent}")
        progress.update(bar, completed=len(shown), description=f"Flower run {flower_run_id}: "
                        f"{status.status}")

    # A bound so a wedged deployment cannot hang the demo: each round may wait its full
    # timeout four times (nodes and replies, for training and for evaluation), plus start-up.
    with progress:
        return wait_for_run(control, flower_run_id, timeout=task.rounds * 4 * task.round_timeout
                            + 120, on_poll=on_poll)


def _print_summary(result: DemoResult, console: Console) -> None:
    run = result.run
    partners = sorted({r.partner for r in run.privacy_reports})
    table = Table(title=f"Run {run.id} (Flower run {run.flower_run_id}): {run.status}")
    for col in ["round", "loss", "accuracy", "AUC", *[f"ε {p}" for p in partners]]:
        table.add_column(col, justify="right", overflow="fold")
    for row in run.rounds:
        eps = {r.partner: r.epsilon for r in run.privacy_reports if r.round == row.round}
        table.add_row(str(row.round), _fmt(row.metrics.get("loss")),
                      _fmt(row.metrics.get("accuracy")), _fmt(row.metrics.get("auc")),
                      *[_fmt(eps.get(p), 2) for p in partners])
    console.print(table)
    budget = Table(title="Each partner's lifetime budget on the dataset (its own ledger)")
    for col in ["partner", "ε this run", "ε lifetime", "cap", "remaining", "runs"]:
        budget.add_column(col, justify="right" if col != "partner" else "left")
    for b in result.budgets:
        this_run = next((r.epsilon for r in b.runs if r.run_id == run.flower_run_id), None)
        budget.add_row(b.partner, _fmt(this_run, 2), _fmt(b.spent, 2), f"{b.cap:g}",
                       _fmt(b.remaining, 2), str(len(b.runs)))
    console.print(budget)
    if run.status != COMPLETED:
        console.print(f"[red]Run {run.status}:[/] {run.reason or result.flower_status.details}")
    final_auc = run.rounds[-1].metrics.get("auc") if run.rounds else None
    console.print(f"Federated DP AUC {_fmt(final_auc)} vs centralized non-private AUC "
                  f"{_fmt(result.baseline_auc)} (δ={run.privacy_reports[0].delta:g})"
                  if run.privacy_reports else "No partner trained.")
    console.print(f"Store: {result.store_url}")
    if result.model_path:
        console.print(f"Model: {result.model_path} (safetensors; also in the store, run {run.id})")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
