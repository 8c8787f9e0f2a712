"""Sangsaeng: federated DP-SGD on partners' private tables (see README.md)."""

__version__ = "0.1.0"
