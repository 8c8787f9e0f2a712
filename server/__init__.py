"""The coordinator, in rooms: api/ (REST), db/ (the store), runs/ (run states and their
only owner), flower/ (ServerApp, strategy, Control API, FAB), deployment/ (processes)."""
