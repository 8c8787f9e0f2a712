"""The coordinator's REST API (FastAPI, /api/v1): the app (app.py), what routes share
(deps.py), the request log (request_log.py), rows as response bodies (responses.py), and
one router per resource (routes/)."""

from .app import create_app

__all__ = ["create_app"]
