"""The auditor's tools: independent recomputation of ε, cross-checks of partners' signed
ledgers against the coordinator's records, the audit log's chain, and the report."""
