"""The coordinator: ServerApp, store, and the orchestration of Flower processes."""
