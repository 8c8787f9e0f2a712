"""`sangsaeng demo`: a whole federated DP run on loopback, driven as a startup would.

The coordinator (SuperLink on loopback, Fleet proxy, API) starts with three partner
SuperNodes; each partner holds a private slice of a real table — insurance customers
(the default task), or customers' product reviews (`--task` sangsaeng/demo/reviews.toml) —
and its own privacy policy (a lifetime epsilon cap) and ledger, trains locally with
DP-SGD and sends only clipped, noised updates. In the text demo the startup first trains
its own base model on public reviews and uploads it; partners evaluate it before the
first round, so the run ends with a receipt: base model → improved model.

The operator registers the dataset in the catalogue and the partners' public keys, and
gives a startup a token; the startup then starts the run, follows it and downloads the
model through the REST API only. Last, an auditor takes each partner's signed ledger
export and checks it, and every ε, against the coordinator's records through the audit
API, and writes the audit report. The work directory persists, so a second demo run
continues from the partners' spending — until a partner's cap refuses a run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sangsaeng.api_client import SangsaengApi
from sangsaeng.audit.fetch import AuditApi, fetch
from sangsaeng.audit.report import AuditReport, write_report
from sangsaeng.audit.uploads import verify_records
from sangsaeng.audit.verify import LoadedLedger, Verification, verify
from sangsaeng.audit.views import print_verification
from sangsaeng.client.budget import DatasetBudget, dataset_budget
from sangsaeng.client.data import partner_data
from sangsaeng.client.ledger import export_ledger, init_ledger
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.deployment.flower_processes import PartnerNode
from sangsaeng.server.runs.reconcile import END_GRACE
from sangsaeng.server.runs.states import COMPLETED, OPEN
from sangsaeng.shared.models import load_model, to_safetensors
from sangsaeng.shared.node_keys import create_node_key, node_public_key
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.runs import RunOut
from sangsaeng.shared.signing import create_key, load_key, public_key_of
from sangsaeng.shared.tables import numbers, print_table
from sangsaeng.shared.task import TaskSpec, load_task
from sangsaeng.views import fmt, print_run, watch_run

from . import reviews
from .baseline import centralized_auc, pooled_holdout_auc
from .data import (
    CARAVAN_DESCRIPTION,
    DemoDataError,
    caravan_table,
    default_task_path,
    public_rows,
    write_partitions,
    write_policy,
    write_schema,
)


@dataclass(frozen=True)
class DemoDataset:
    """What the demo holds for a dataset: the partners' rows, and (for a startup that
    brings a model) how the startup trains its base model on public data."""

    description: str
    table: Callable[[], pd.DataFrame]
    models: tuple[str, ...]  # what the partners' policies allow
    base_model: Callable[[TaskSpec, Console], dict[str, torch.Tensor]] | None = None


def _reviews_base(task: TaskSpec, console: Console) -> dict[str, torch.Tensor]:
    public = reviews.public_table().head(PUBLIC_REVIEWS)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task(f"startup: encoding {len(public)} public reviews for its "
                                "base model", total=len(public))
        return reviews.train_base_model(task, public, progress=lambda done, _: progress.update(
            bar, completed=done))


PUBLIC_REVIEWS = 200  # the startup's own labelled data: a few public reviews
DATASETS = {
    "caravan": DemoDataset(CARAVAN_DESCRIPTION, caravan_table, ("logreg", "mlp")),
    "fine-food-reviews": DemoDataset(reviews.DESCRIPTION, reviews.partners_table,
                                     ("text-classifier",), _reviews_base),
}

# partner -> its lifetime epsilon cap on the dataset (its policy, not the task's)
PARTNERS = {"hanbit-bank": 10.0, "daehan-insurance": 10.0, "minjung-mutual": 6.0}
DEMO_TENANT = "demo-startup"
# The ServerApp records a stop within seconds; if it cannot (Flower ends it hard after 5 s),
# reconciliation records it after END_GRACE. Either way the store says how the run ended.
STOP_GRACE_SECONDS = END_GRACE.total_seconds() + 15


@dataclass
class DemoResult:
    run: RunOut
    model_auc: float | None  # the downloaded model, on the partners' pooled holdout rows
    baseline_auc: float | None  # non-private, centralized, from the same start
    base_auc: float | None  # the startup's base model (if it brought one)
    model_path: Path | None
    store_url: str
    budgets: list[DatasetBudget]  # each partner's own view, from its ledger
    verification: Verification  # the auditor's, of the partners' ledgers and every ε
    report_path: Path


def run_demo(workdir: Path, task_path: Path | None = None, store_url: str | None = None,
             console: Console | None = None) -> DemoResult:
    console = console or Console()
    task = load_task(task_path or default_task_path())  # a bad task stops here: nothing started
    dataset = DATASETS.get(task.dataset)
    if dataset is None:
        raise DemoDataError(f"the demo holds data for the datasets {', '.join(DATASETS)}, "
                            f"not '{task.dataset}'")
    workdir = workdir.resolve()
    store_url = store_url or f"sqlite:///{workdir / 'sangsaeng.db'}"
    data_paths = write_partitions(list(PARTNERS), workdir / "partners", table=dataset.table())
    # The dataset's schema, as the partners declare it in their policies and the operator
    # publishes it in the catalogue (every column of the table but the ids); kept for
    # `sangsaeng admin dataset add` against a `sangsaeng server` of your own.
    schema = write_schema(workdir / f"{task.dataset}.catalogue.json", task, data_paths,
                          dataset.description, holders=list(PARTNERS))
    entry = DatasetEntry.from_file(schema)
    # The startup's base model, trained on public data before it asks partners for theirs
    # (the partners' policies accept it by its sha256, as the upload will name it).
    base = None if dataset.base_model is None else dataset.base_model(task, console)
    base_bytes = None if base is None else to_safetensors(base)
    base_models = () if base_bytes is None else (hashlib.sha256(base_bytes).hexdigest(),)
    partners = [
        PartnerNode(name, write_policy(workdir / "partners" / f"{name}.policy.toml", name,
                                       task.dataset, path, cap, schema, public_rows(path),
                                       models=dataset.models, base_models=base_models))
        for (name, cap), path in zip(PARTNERS.items(), data_paths, strict=True)
    ]
    for partner in partners:  # each partner's one-time set-up (kept across demo runs)
        policy = PartnerPolicy.load(partner.policy_path)
        if not policy.ledger_path(task.dataset).exists():
            init_ledger(policy, task.dataset)
    console.print(f"[bold]Sangsaeng demo[/]: {len(partners)} partners hold private slices of "
                  f"'{task.dataset}'; task {task.sha256()[:12]} ({task.model.kind}, "
                  f"{task.rounds} rounds, σ={task.dp.noise_multiplier or 'from target ε'}, "
                  f"δ={task.dp.delta:g})")
    with Coordinator(workdir, store_url, verifier=verify_records) as coordinator:
        # The operator's part: publish the dataset's schema, give the startup a token.
        coordinator.store.catalogue.put(entry.name, entry.model_dump_json())
        token = create_token(coordinator.store, "demo", Role.STARTUP, DEMO_TENANT)
        for partner in partners:  # its keys, made by the partner; registered by the operator
            coordinator.store.partners.put(partner.partner, _partner_key(partner),
                                           _node_key(partner), replace=True)
            coordinator.add_partner(partner)
        console.print(f"API {coordinator.api_url}; partners' SuperNodes "
                      f"({', '.join(p.partner for p in partners)}) dial the Fleet proxy "
                      f"{coordinator.fleet_address}")
        # The startup's part, through the API only.
        with SangsaengApi(coordinator.api_url, token, ca_file=coordinator.ca_file) as api:
            if base_bytes is not None:
                uploaded = api.upload_model(base_bytes)
                task = task.model_copy(update={"base_model": uploaded.sha256})
                console.print(f"Startup uploaded its base model {uploaded.sha256[:12]} "
                              f"({uploaded.size} bytes; trained on {PUBLIC_REVIEWS} public "
                              "reviews)")
            run = api.start_run(task)
            console.print(f"Run {run.id} started (Flower run {run.flower_run_id})")
            try:
                run = watch_run(api, run.id, console)
            except BaseException:
                _stop(api, run.id)  # Ctrl-C
                raise
            model_path = None
            if run.model_sha256 is not None:
                model_path = workdir / f"model-run{run.id}.safetensors"
                model_path.write_bytes(api.model(run.id))
                (workdir / f"model-run{run.id}.card.json").write_text(
                    api.card(run.id).model_dump_json(indent=2))
        # The auditor's part: partners' signed ledgers against the coordinator's records.
        auditor = create_token(coordinator.store, "demo-auditor", Role.AUDITOR)
        ledgers = _export_ledgers(partners, task.dataset, workdir / "ledger-exports")
        with AuditApi(coordinator.api_url, auditor, ca_file=coordinator.ca_file) as api:
            data = fetch(api)
        verification = verify(data, ledgers)
        report_path = workdir / "audit-report.html"
        write_report(AuditReport(data=data, verification=verification), report_path)
    console.print("Centralized, non-private baseline (same model, pooled data)...")
    budgets = [dataset_budget(PartnerPolicy.load(p.policy_path), task.dataset) for p in partners]
    # the demo plays every partner: it may pool their rows, as no one else can
    parts = [partner_data(p.policy_path, task) for p in partners]
    model_auc = None if model_path is None else pooled_holdout_auc(
        parts, load_model(task, model_path.read_bytes()))
    base_auc = None if base_bytes is None else pooled_holdout_auc(
        parts, load_model(task, base_bytes))
    result = DemoResult(run, model_auc, centralized_auc(task, parts, base), base_auc,
                        model_path, store_url, budgets, verification, report_path)
    _print_summary(result, console)
    return result


def _partner_key(partner: PartnerNode) -> str:
    """The partner's public key, its key pair made on first use."""
    path = PartnerPolicy.load(partner.policy_path).signing_key_path()
    return public_key_of(load_key(path)) if path.exists() else create_key(path)


def _node_key(partner: PartnerNode) -> str:
    """The partner's node key (its SuperNode's identity), made on first use."""
    path = PartnerPolicy.load(partner.policy_path).node_key_path()
    return node_public_key(path) if path.exists() else create_node_key(path)


def _export_ledgers(partners: list[PartnerNode], dataset: str, outdir: Path
                    ) -> list[LoadedLedger]:
    """Each partner's signed export of its ledger, as it would send it to the auditor."""
    outdir.mkdir(parents=True, exist_ok=True)
    exports = []
    for partner in partners:
        signed = export_ledger(PartnerPolicy.load(partner.policy_path), dataset)
        path = outdir / f"{partner.partner}.{dataset}.ledger.json"
        path.write_text(signed.model_dump_json(indent=1))
        exports.append(LoadedLedger(path.name, signed))
    return exports


def _stop(api: SangsaengApi, run_id: int) -> None:
    """Stop the run, and wait (briefly) until the coordinator records how it ended."""
    api.stop(run_id)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while api.run(run_id).status in OPEN and time.monotonic() < deadline:
        time.sleep(0.5)


def _print_summary(result: DemoResult, console: Console) -> None:
    run = result.run
    print_run(run, console)
    print_budgets(result.budgets, run.flower_run_id, console)
    reports = [p for r in run.rounds for p in r.privacy]
    base = "" if result.base_auc is None else f"Base model's AUC {fmt(result.base_auc)} → "
    console.print(f"{base}Federated DP model's AUC {fmt(result.model_auc)} vs centralized "
                  f"non-private AUC {fmt(result.baseline_auc)}, all on the partners' pooled "
                  f"holdout rows (δ={reports[0].delta:g})" if reports else "No partner trained.")
    console.print(f"Store: {result.store_url}")
    if result.model_path:
        console.print(f"Model: {result.model_path} (safetensors, downloaded through the API; "
                      f"its model card beside it)")
    console.print("[bold]The auditor's check[/] (partners' signed ledgers, the coordinator's "
                  "records, ε recomputed with a second library):")
    print_verification(result.verification, console)
    console.print(f"Audit report: {result.report_path} (and .json beside it)")
    if run.status != COMPLETED:
        console.print(f"[red]Run {run.status}[/]")


def print_budgets(budgets: list[DatasetBudget], flower_run_id: str | None,
                  console: Console) -> None:
    """Each partner's budget on the dataset, from its own ledger: what the run spent, the
    lifetime ε, the cap, what remains, and how many runs spent it."""
    title = "Each partner's lifetime budget on the dataset (its own ledger)"
    budget, short = Table(title=title), Table(title=title)
    budget.add_column("partner", no_wrap=True)
    numbers(budget, ["ε this run", "ε lifetime", "cap", "remaining", "runs"])
    short.add_column("partner", no_wrap=True)  # narrow terminals: shorter headers
    numbers(short, ["ε run", "ε life", "cap", "left", "runs"])
    for b in budgets:
        this_run = next((r.epsilon for r in b.runs if str(r.run_id) == flower_run_id), None)
        row = [escape(b.partner), fmt(this_run, 2), fmt(b.spent, 2), f"{b.cap:g}",
               fmt(b.remaining, 2), str(len(b.runs))]
        budget.add_row(*row)
        short.add_row(*row)
    print_table(console, budget, short)
