"""The coordinator's processes: Flower's SuperLink and (local) SuperNodes, the HTTP
listeners (API and Fleet proxy), and the Coordinator that runs them together."""
