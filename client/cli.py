"""`sangsaeng client ...`: the partner's own view of its budget and ledger."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sangsaeng.shared.cli import REFUSED, USAGE, fail, failing_on
from sangsaeng.shared.node_keys import NodeKeyError, create_node_key, node_public_key
from sangsaeng.shared.signing import SigningKeyError, create_key, load_key, public_key_of
from sangsaeng.shared.tables import numbers, print_table

from .budget import DatasetBudget, LedgerBroken, dataset_budget
from .ledger import (
    LedgerExists,
    LedgerMismatch,
    LedgerMissing,
    export_ledger,
    init_ledger,
    open_ledger,
)
from .policy import PartnerPolicy, PolicyError, TaskRefused

app = typer.Typer(help="Partner side: privacy budget, ledger and signing key.",
                  no_args_is_help=True)
ledger_app = typer.Typer(help="The append-only, hash-chained privacy ledger.",
                         no_args_is_help=True)
key_app = typer.Typer(help="The partner's Ed25519 key: it signs ledger exports for auditors.",
                      no_args_is_help=True)
node_key_app = typer.Typer(help="The node key: the SuperNode's identity at the coordinator "
                           "(Flower's SuperNode authentication).", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(key_app, name="key")
app.add_typer(node_key_app, name="node-key")
console = Console()
notes = Console(stderr=True)  # where stdout carries a result (a key, an export)

PolicyOption = Annotated[Path, typer.Option("--policy", help="The partner's policy file.")]
DatasetOption = Annotated[str | None, typer.Option(help="One dataset (default: all).")]


def _load(policy_path: Path, dataset: str | None) -> tuple[PartnerPolicy, list[str]]:
    with failing_on(PolicyError, TaskRefused):
        policy = PartnerPolicy.load(policy_path)
        names = [dataset] if dataset else list(policy.datasets)
        for name in names:
            policy.dataset(name)
    return policy, names


@app.command()
def node(
    policy_path: PolicyOption,
    superlink: Annotated[str, typer.Option(help="The coordinator's Fleet address, HOST:PORT.")],
    runtime_port: Annotated[int, typer.Option(
        help="Loopback port of the SuperNode's local Runtime API (distinct per node on a "
             "host).")] = 9094,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Plain HTTP to the coordinator (loopback and tests only).")] = False,
    root_certificates: Annotated[Path | None, typer.Option(
        help="CA certificate (PEM) that signed the coordinator's Fleet certificate.")] = None,
) -> None:
    """Run this partner's Flower SuperNode so that only its own installed sangsaeng runs on
    its data: a run whose app bundle is not the one this release builds is refused, and
    no code the coordinator sends is ever imported. Over TLS it signs every request with
    the policy's node key (`sangsaeng client node-key create`), which the coordinator's
    operator registered."""
    from .node import NodeError, run_node

    policy, _ = _load(policy_path, None)  # a bad policy stops here, before anything starts
    if insecure == (root_certificates is not None):
        fail("give exactly one of --insecure and --root-certificates", USAGE)
    if insecure:
        tls = ["--insecure"]
    else:  # the coordinator authenticates the node by this key: it must exist
        with failing_on(NodeKeyError, code=USAGE):
            node_public_key(policy.node_key_path())
        tls = ["--root-certificates", str(root_certificates),
               "--auth-supernode-private-key", str(policy.node_key_path())]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher %(message)s")
    with failing_on(NodeError, code=REFUSED):
        code = run_node(superlink, policy_path, runtime_port, tls)
    raise typer.Exit(code)


@app.command()
def budget(policy_path: PolicyOption, dataset: DatasetOption = None) -> None:
    """Per dataset: cap, lifetime epsilon spent, remaining, and the runs that spent it."""
    policy, names = _load(policy_path, dataset)
    for name in names:
        try:
            b = dataset_budget(policy, name)
        except LedgerMissing as err:
            console.print(f"{policy.partner} / {name}: {err}")
            continue
        except (LedgerBroken, LedgerMismatch) as err:
            fail(f"{policy.partner} / {name}: {err}; no budget can be read from it")
        print_budget(b, console)


def print_budget(b: DatasetBudget, console: Console) -> None:
    """A dataset's budget: the lifetime figures in the title, a row per run."""
    table = Table(title=f"{b.partner} / {b.dataset}: spent ε {b.spent:.3f} of cap "
                        f"{b.cap:g} (δ={b.delta:g}), remaining {b.remaining:.3f}",
                  caption="ε per run is that run alone; runs compose by the accountant, "
                          "so they do not add up to the lifetime ε")
    numbers(table, ["run", "rounds reserved", "committed", "ε of the run"])
    for r in b.runs:
        table.add_row(r.run_id, str(r.rounds), str(r.committed), f"{r.epsilon:.3f}")
    print_table(console, table)


@app.command()
def dashboard(
    policy_path: PolicyOption,
    host: Annotated[str, typer.Option(
        help="Only 127.0.0.1: the page is the partner's own.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Loopback port (0: any free one).")] = 8700,
) -> None:
    """Serve this partner's ledger and budget per dataset as a read-only web page on
    127.0.0.1: the figures `budget` prints, ε over the ledger's life, the hash chain's
    verification."""
    from .dashboard import LOOPBACK, serve  # the web stack loads only for this command

    _load(policy_path, None)  # a bad policy stops here, before anything listens
    if host != LOOPBACK:
        fail(f"--host {host}: the dashboard serves on {LOOPBACK} only, since it shows the "
             "partner's budget to whoever reaches it (from another machine, use an SSH "
             "tunnel)", USAGE)

    def announce(url: str) -> None:
        sys.stdout.write(f"{policy_path}: partner page at {url} (Ctrl-C stops it)\n")
        sys.stdout.flush()  # a pipe buffers; whoever waits for the URL needs it now

    try:
        serve(policy_path, port, announce)
    except OSError as err:
        fail(f"cannot listen on {LOOPBACK}:{port}: {err.strerror}", REFUSED)


@ledger_app.command()
def init(policy_path: PolicyOption, dataset: DatasetOption = None) -> None:
    """Make each dataset's ledger, bound to its data file (training never makes one, so a
    lost ledger stops the dataset instead of restarting its budget). Refuses to replace a
    ledger, or to give a data file that has one a second."""
    policy, names = _load(policy_path, dataset)
    for name in names:
        with failing_on(LedgerExists, code=REFUSED):
            path = init_ledger(policy, name)
        console.print(f"{name}: ledger made at {path}")


@ledger_app.command()
def verify(
    policy_path: PolicyOption, dataset: DatasetOption = None,
    expect: Annotated[str | None, typer.Option(
        help="SEQ:HASH of a head recorded elsewhere (the coordinator's privacy records); "
             "checks it is still in the chain. Needs --dataset.")] = None,
) -> None:
    """Walk each ledger's hash chain; report the first broken entry (exit 1 if any)."""
    policy, names = _load(policy_path, dataset)
    anchor = None
    if expect is not None:
        seq, _, hash_ = expect.partition(":")
        if not (dataset and seq.isdigit() and len(hash_) == 64):
            fail("--expect takes SEQ:HASH (64 hex digits), with --dataset", USAGE)
        anchor = (int(seq), hash_)
    broken = False
    for name in names:
        try:
            with open_ledger(policy, name) as ledger:
                result = ledger.verify(expect=anchor)
        except LedgerMissing as err:
            console.print(f"{name}: {err}")
            continue
        except LedgerMismatch as err:
            broken = True
            console.print(f"[red]{name}: {err}[/]")
            continue
        if result.ok:
            console.print(f"{name}: ok ({result.entries} entries, hash chain intact)")
        else:
            broken = True
            console.print(f"[red]{name}: BROKEN at entry {result.first_broken_seq}: "
                          f"{result.problem}[/]")
    if broken:
        raise typer.Exit(1)


@ledger_app.command()
def export(policy_path: PolicyOption, dataset: Annotated[str, typer.Option()],
           output: Annotated[Path | None, typer.Option("-o", "--output",
                                                       help="File (default: stdout).")] = None
           ) -> None:
    """The dataset's whole ledger as JSON, signed with the partner's key, for auditors
    (`sangsaeng audit verify --ledger FILE`)."""
    policy, _ = _load(policy_path, dataset)
    with failing_on(LedgerMissing, LedgerMismatch, SigningKeyError, code=REFUSED):
        signed = export_ledger(policy, dataset)
    text = signed.model_dump_json(indent=1) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"{dataset}: {len(signed.export.entries)} entries signed by "
                      f"{policy.partner} → {output}")


@key_app.command("create")
def key_create(policy_path: PolicyOption) -> None:
    """Make the partner's signing key (never overwrites one) and print its public key,
    which the coordinator's operator registers (`sangsaeng admin partner add`)."""
    policy, _ = _load(policy_path, None)
    with failing_on(SigningKeyError, code=REFUSED):
        public = create_key(policy.signing_key_path())
    notes.print(f"created {policy.signing_key_path()} (keep it private); its public key:")
    sys.stdout.write(public + "\n")


@key_app.command("show")
def key_show(policy_path: PolicyOption) -> None:
    """Print the partner's public key (base64 of 32 bytes)."""
    policy, _ = _load(policy_path, None)
    with failing_on(SigningKeyError, code=REFUSED):
        sys.stdout.write(public_key_of(load_key(policy.signing_key_path())) + "\n")


@node_key_app.command("create")
def node_key_create(policy_path: PolicyOption) -> None:
    """Make the SuperNode's key (never overwrites one) and print its public key, which the
    coordinator's operator registers (`sangsaeng admin partner add --node-key`)."""
    policy, _ = _load(policy_path, None)
    with failing_on(NodeKeyError, code=REFUSED):
        public = create_node_key(policy.node_key_path())
    notes.print(f"created {policy.node_key_path()} (keep it private); its public key:")
    sys.stdout.write(public + "\n")


@node_key_app.command("show")
def node_key_show(policy_path: PolicyOption) -> None:
    """Print the SuperNode's public key (one OpenSSH line)."""
    policy, _ = _load(policy_path, None)
    with failing_on(NodeKeyError, code=REFUSED):
        sys.stdout.write(node_public_key(policy.node_key_path()) + "\n")
