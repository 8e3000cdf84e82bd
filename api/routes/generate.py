"""POST /v1/chat/completions and /v1/completions."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from api.deps import AdmissionDep, OwnerDep, RelayDep, SettingsDep
from api.payloads import chat_payload, completion_payload
from api.responder import Responder
from shared.schemas import ChatCompletionRequest, CompletionRequest

router = APIRouter(prefix="/v1", tags=["generation"])


@router.post("/chat/completions")
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    owner: OwnerDep,
    settings: SettingsDep,
    relay: RelayDep,
    admission: AdmissionDep,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> Any:
    payload = chat_payload(body, settings)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await Responder(request, relay, admission, settings).serve(
        payload, owner, bool(body.stream), include_usage, idempotency_key or ""
    )


@router.post("/completions")
async def create_completion(
    body: CompletionRequest,
    request: Request,
    owner: OwnerDep,
    settings: SettingsDep,
    relay: RelayDep,
    admission: AdmissionDep,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> Any:
    payload = completion_payload(body, settings)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await Responder(request, relay, admission, settings).serve(
        payload, owner, bool(body.stream), include_usage, idempotency_key or ""
    )
