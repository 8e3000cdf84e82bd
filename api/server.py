"""`llamaq api`: serve the app with uvicorn (HTTPS with LLAMAQ_TLS_*); on SIGTERM/SIGINT open streams end cleanly."""

from types import FrameType

import uvicorn

from api.app import create_app
from api.middleware.drain import Drain
from shared.logs import configure_logging
from shared.settings import Settings
from shared.tls import tls_problem


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain.trigger()
        super().handle_exit(sig, frame)


def main(settings: Settings) -> None:
    if problem := tls_problem(settings):
        raise SystemExit(problem)
    configure_logging(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    DrainingServer(config, app.state.drain).run()
