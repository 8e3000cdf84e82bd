"""CORS for browser clients (LLAMAQ_CORS_ORIGINS): Starlette's `CORSMiddleware`, set up for the OpenAI clients.

Preflights are answered here, before any route, so they need no API key (a browser sends none on them);
every real request still goes through the key check. Added outside the body limit and the drain (inside the
request log, which times and logs preflights too) so its headers are on error answers as well: a script cannot
read a response that lacks them.
"""

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

METHODS = ["GET", "POST", "DELETE"]
# Any request header: the OpenAI SDKs send `x-stainless-*` headers that change between releases, and a
# header grants nothing by itself. No credentials mode: the API key travels in `Authorization`, not in cookies.
HEADERS = ["*"]
# What the SDKs read from an answer: the wait after a 429, the request id, whether to retry.
EXPOSED = ["Retry-After", "X-Request-ID", "X-Should-Retry"]


def add_cors(app: FastAPI, origins: list[str]) -> None:
    """CORS headers for `origins` (`*`: any); none at all without origins."""
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=METHODS,
            allow_headers=HEADERS,
            expose_headers=EXPOSED,
            max_age=600,
        )
