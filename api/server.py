"""`llamaq api`: serve the app with uvicorn; on SIGTERM/SIGINT open event streams end with a terminal event."""

from types import FrameType

import uvicorn

from api.app import create_app
from api.middleware.drain import Drain
from shared.logs import configure_logging
from shared.settings import Settings


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain.trigger()
        super().handle_exit(sig, frame)


def main(settings: Settings) -> None:
    configure_logging(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    DrainingServer(config, app.state.drain).run()
