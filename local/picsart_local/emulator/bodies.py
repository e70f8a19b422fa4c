"""Reading a tool call's body: multipart/form-data or JSON, with the error each problem answers."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal, cast

from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Request

from .errors import ApiError
from .validation import RawParams, Upload

# Room for form fields and multipart framing on top of the image itself.
BODY_OVERHEAD_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Body:
    """A parsed tool-call body, or the error that parsing it produced."""

    kind: Literal["form", "json"] = "form"
    params: RawParams = dataclasses.field(default_factory=dict)
    error: ApiError | None = None


def read_body(request: Request, max_input_bytes: int) -> Body:
    """Parse a tool call's body; keep any error for the gateway's body step to answer."""
    limit = max_input_bytes + BODY_OVERHEAD_BYTES
    mimetype = request.mimetype
    if not mimetype and not request.content_length and "Transfer-Encoding" not in request.headers:
        # The spec's request bodies are optional: no body at all is a call without parameters (422 for the
        # missing input), not a body of the wrong type.
        return Body("form", {})
    try:
        if mimetype == "multipart/form-data":
            _, form, files = parse_form_data(request.environ, max_content_length=limit, silent=False)
            params: dict[str, list[object]] = {name: list(form.getlist(name)) for name in form}
            for name in files:
                uploads = [_read_upload(storage, max_input_bytes) for storage in files.getlist(name)]
                params.setdefault(name, []).extend(uploads)
            return Body("form", params)
        if mimetype == "application/json":
            if request.content_length is not None and request.content_length > limit:
                raise ApiError(413, f"The request body is larger than {limit} bytes")
            raw = request.stream.read(limit + 1)
            if len(raw) > limit:
                raise ApiError(413, f"The request body is larger than {limit} bytes")
            try:
                decoded = json.loads(raw)
            except ValueError:
                raise ApiError(400, "Bad Request: the body is not valid JSON") from None
            if not isinstance(decoded, dict):
                raise ApiError(400, "Bad Request: the JSON body must be an object")
            return Body("json", cast(dict[str, object], decoded))
        shown = mimetype or "none"
        raise ApiError(
            415,
            f"Unsupported Media Type: Content-Type {shown}; use multipart/form-data or application/json",
        )
    except ApiError as error:
        return Body(error=error)
    except RequestEntityTooLarge:
        return Body(error=ApiError(413, f"The request body is larger than {limit} bytes"))
    except ValueError as exc:
        return Body(error=ApiError(400, f"Bad Request: malformed multipart/form-data body ({exc})"))


def _read_upload(storage: FileStorage, max_bytes: int) -> Upload:
    data = storage.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, f"{storage.name}: the file is larger than {max_bytes} bytes")
    return Upload(data=data, filename=storage.filename)
