"""A JSON response serialised with orjson, for answers built outside FastAPI's return-value encoding."""

from typing import Any

import orjson
from starlette.responses import Response


class OrjsonResponse(Response):
    # Ours, not FastAPI's: FastAPI deprecated its ORJSONResponse, and warnings are errors in tests.
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
