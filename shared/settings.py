"""Operator settings, read from `LLAMAQ_*` environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.origins import check_origin
from shared.redisurl import is_sentinel, parse_sentinel
from shared.webhook_config import check_webhooks

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLAMAQ_", extra="ignore")

    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://, rediss://, unix://, or redis+sentinel://[user:pass@]host:port[,host:port...]"
        "/<service>[/<db>] to follow a Sentinel-managed master). Unset: `llamaq up` starts an embedded Redis.",
    )
    model_path: Path | None = Field(None, description="GGUF file the worker loads; unset: the bundled SmolLM2.")
    model_name: str = Field(
        DEFAULT_MODEL_NAME,
        description="Model id clients send and the worker serves. Unset with LLAMAQ_EMBEDDING=true: "
        "`all-MiniLM-L6-v2` (the bundled embedding model), or the file name of LLAMAQ_MODEL_PATH without `.gguf`.",
    )
    embedding: bool = Field(
        False,
        description="The worker serves /v1/embeddings for its model (LLAMAQ_MODEL_PATH an embedding GGUF; unset: "
        "the bundled all-MiniLM-L6-v2, converted once to GGUF and cached).",
    )
    pooling: Literal["auto", "mean", "cls", "last"] = Field(
        "auto",
        description="How an embedding worker makes one vector of a text's token vectors: `auto` (as the GGUF says), "
        "`mean`, `cls` (the first token) or `last` (the last token, for decoder models).",
    )
    models: str = Field(
        "",
        description="Models `llamaq up` serves, `;`-separated specs `NAME=PATH[,OPTION=VALUE...]` (PATH a GGUF or "
        "`bundled`; options `workers` and the worker settings `slots`, `n_ctx`, `max_queue_depth`, ..., "
        "`embedding`); empty: the one model of LLAMAQ_MODEL_PATH/LLAMAQ_MODEL_NAME.",
    )
    weights: Literal["auto", "as-is", "q8_0", "q4_0"] = Field(
        "auto",
        description="Weights the worker serves: `auto` (the bundled model as a cached Q8_0 copy, a GGUF of your own "
        "as given), `as-is`, or a cached `q8_0`/`q4_0` copy of the file.",
    )
    n_threads: int = Field(1, ge=1, description="llama.cpp threads per worker; one worker per core.")
    n_ctx: int = Field(2048, ge=64, description="Context window in tokens (prompt + completion).")
    n_batch: int = Field(256, ge=1, description="llama.cpp prompt batch size.")
    slots: int = Field(
        4,
        ge=1,
        le=64,
        description="Jobs one worker generates at once, decoded together (each slot holds LLAMAQ_N_CTX tokens).",
    )
    max_queue_depth: int = Field(
        64,
        ge=1,
        description="Interactive jobs a model's queue may hold before 429. Set on a worker, it is that model's own "
        "limit (published to the API); set on the API, the limit of models whose workers publish none.",
    )
    max_batch_queue_depth: int = Field(
        100_000, ge=1, description="Background/batch jobs a model may hold (per model as LLAMAQ_MAX_QUEUE_DEPTH)."
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Comma-separated bearer keys; empty: no authentication."
    )
    metrics_auth: bool = Field(False, description="Require an API key (bearer) for /metrics too.")
    dashboard_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated dashboard passwords (HTTP Basic, any user, or bearer); empty: LLAMAQ_API_KEYS.",
    )
    dashboard_actions: bool = Field(False, description="Allow the dashboard's requeue/delete/empty actions.")
    host: str = Field("127.0.0.1", description="API listen address.")
    port: int = Field(8000, ge=0, le=65535, description="API listen port.")
    tls_cert: Path | None = Field(
        None, description="PEM certificate (chain) the API serves HTTPS with, set with LLAMAQ_TLS_KEY; unset: HTTP."
    )
    tls_key: Path | None = Field(None, description="Unencrypted PEM private key of LLAMAQ_TLS_CERT.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins browsers may call the API from (`https://app.example`), `*` for any; "
        "empty: no CORS headers.",
    )
    max_tokens_cap: int = Field(4096, ge=1, description="Largest max_tokens a request may ask for.")
    default_max_tokens: int = Field(
        1024,
        ge=0,
        description="Completion budget of a chat request that names none (finish_reason `length` when reached); "
        "0: up to the end of the context.",
    )
    max_messages: int = Field(256, ge=1, description="Most messages a chat request may carry.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body accepted (413 above).")
    sync_timeout: float = Field(300.0, gt=0, description="Seconds a synchronous call waits for its job.")
    job_timeout: int = Field(600, ge=1, description="Seconds a job may generate before it fails.")
    heartbeat_interval: float = Field(1.0, gt=0, description="Seconds between worker heartbeats.")
    heartbeat_ttl: int = Field(10, ge=2, description="Seconds without a heartbeat before a job is orphaned.")
    result_ttl: int = Field(86_400, ge=1, description="Seconds results, events and job records are kept.")
    job_retries: int = Field(2, ge=0, description="Extra attempts for a background job whose worker died.")
    stream_maxlen: int = Field(8192, ge=16, description="Cap on a job's replay stream (events kept).")
    events_timeout: float = Field(3600.0, gt=0, description="Longest a /v1/jobs/{id}/events stream stays open.")
    max_file_bytes: int = Field(100_000_000, ge=1024, description="Largest batch input file accepted (413 above).")
    max_batch_lines: int = Field(50_000, ge=1, description="Most requests one batch input file may hold.")
    log_json: bool = Field(False, description="Write logs as JSON lines.")
    log_level: str = Field("INFO", description="Logging level.")
    tracing: Literal["off", "otlp"] = Field(
        "off",
        description="`otlp`: OpenTelemetry spans of every request and job, exported over OTLP/HTTP to "
        "OTEL_EXPORTER_OTLP_ENDPOINT (needs the `tracing` extra); `off`: none.",
    )
    ready_file: Path | None = Field(None, description="File the worker touches once its model is warm.")
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated endpoints every batch.* and response.* event is sent to; empty: no webhooks.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Signing secret (`whsec_` + base64), required with LLAMAQ_WEBHOOK_URLS."
    )
    webhook_allow_private: bool = Field(
        False,
        description="Allow endpoints on loopback, private, link-local addresses (and plain http to them only).",
    )
    webhook_key_urls: SecretStr | None = Field(
        None,
        description='Extra endpoints per API key, JSON `{"<api key>": "<url>,<url>"}`: the events of that key\'s '
        "batches and responses go there too (signed with LLAMAQ_WEBHOOK_SECRET).",
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds one delivery attempt may take.")
    webhook_retry_base: float = Field(
        5.0, gt=0, description="Seconds before the first retry; doubled each attempt (with jitter)."
    )
    webhook_retry_max_delay: float = Field(3600.0, gt=0, description="Longest wait between two attempts, seconds.")
    webhook_max_attempts: int = Field(100, ge=1, description="Attempts before a delivery goes to the dead letters.")
    webhook_max_age: float = Field(
        259_200.0, gt=0, description="Seconds after the event a delivery is still retried (72 h), then dead-lettered."
    )

    @model_validator(mode="after")
    def _embedding_model_name(self) -> "Settings":
        if self.embedding and "model_name" not in self.model_fields_set:
            self.model_name = DEFAULT_EMBEDDING_MODEL_NAME if self.model_path is None else self.model_path.stem
        return self

    @field_validator("api_keys", "dashboard_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("tls_cert", "tls_key", mode="before")
    @classmethod
    def _unset_if_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _sentinel_url(cls, url: str | None) -> str | None:
        if url and is_sentinel(url):
            parse_sentinel(url)
        return url

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin for origin in (part.strip() for part in value.split(",")) if origin]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        return [check_origin(origin) for origin in origins]

    @model_validator(mode="after")
    def _tls_pair(self) -> "Settings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                "LLAMAQ_TLS_CERT and LLAMAQ_TLS_KEY go together: set both to serve HTTPS, or neither for HTTP"
            )
        return self

    @model_validator(mode="after")
    def _webhooks(self) -> "Settings":
        check_webhooks(self.webhook_urls, self.webhook_secret, self.webhook_allow_private, self.webhook_key_urls)
        return self


@lru_cache
def get_settings() -> Settings:
    """The settings a command starts with; bad ones end it with one line per setting, naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit("\n".join(_described(error) for error in exc.errors())) from None


def _described(error: ErrorDetails) -> str:
    where = f"LLAMAQ_{'_'.join(str(part) for part in error['loc']).upper()}: " if error["loc"] else ""
    return f"llamaq: invalid setting: {where}{error['msg'].removeprefix('Value error, ')}"
