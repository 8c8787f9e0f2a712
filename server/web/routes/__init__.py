"""The dashboard's pages, one module per view."""
