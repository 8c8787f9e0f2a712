"""One router per resource. Handlers are thin, plain `def`s, which FastAPI runs in its
thread pool, because the store and the Control API are blocking."""
