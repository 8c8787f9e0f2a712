"""`sangsaeng client dashboard`: the partner's own page, on its loopback only.

Read-only: it shows each dataset's ledger and budget (the figures `sangsaeng client budget`
prints, from the same function), ε over the ledger's life and the chain's verification;
it has no form, changes nothing and loads nothing from outside."""

from .app import LOOPBACK, create_app, serve
from .pages import render_dataset, render_index

__all__ = ["LOOPBACK", "create_app", "render_dataset", "render_index", "serve"]
