"""`llamaq api`: serve the app with uvicorn."""

import uvicorn

from api.app import create_app
from shared.logs import configure_logging
from shared.settings import Settings


def main(settings: Settings) -> None:
    configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
