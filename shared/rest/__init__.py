"""The coordinator's REST contract: the bodies its API answers with, as the startup's and
the auditor's clients read them. Plain pydantic, no ORM: importing it loads neither
FastAPI nor SQLAlchemy nor Flower."""

API_PREFIX = "/api/v1"
