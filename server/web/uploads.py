"""Documents uploaded through the dashboard's forms (a task, a catalogue entry): parsed as
the CLIs read files (shared/files.py), then sent to the API, which validates them."""

from __future__ import annotations

import json

from starlette.datastructures import UploadFile

from sangsaeng.shared.files import DocumentError, parse_document

MAX_DOCUMENT = 2 * 2**20


async def uploaded_document(upload: object, what: str) -> object:
    """The parsed upload; ValueError naming `what` ("task", "catalogue entry") otherwise."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ValueError(f"choose a {what} file (.toml or .json)")
    content = await upload.read(MAX_DOCUMENT + 1)
    if len(content) > MAX_DOCUMENT:
        raise ValueError(f"the {what} file is over {MAX_DOCUMENT} bytes")
    try:
        parsed = parse_document(upload.filename, content.decode("utf-8"))
        json.dumps(parsed, allow_nan=False)  # what the API is sent: no dates, NaN, infinity
    except DocumentError as err:
        raise ValueError(f"the {what} file: {err}") from None
    except (UnicodeDecodeError, RecursionError):
        raise ValueError(f"the {what} file is not valid UTF-8 TOML or JSON") from None
    except (TypeError, ValueError):
        raise ValueError(f"the {what} file holds a value JSON cannot carry (a date, NaN or "
                         "infinity)") from None
    return parsed
