"""POST /v1/chat/completions and /v1/completions."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from api.deps import AdmissionDep, OwnerDep, RelayDep, SettingsDep
from api.payloads import chat_payload, completion_payload
from api.responder import Responder
from shared.schemas import ChatCompletionRequest, CompletionRequest

router = APIRouter(prefix="/v1", tags=["generation"])


def responder(request: Request, settings: SettingsDep, relay: RelayDep, admission: AdmissionDep) -> Responder:
    return Responder(request, relay, admission, settings)


ResponderDep = Annotated[Responder, Depends(responder)]
IdempotencyKey = Annotated[str | None, Header(max_length=256)]


@router.post("/chat/completions")
async def create_chat_completion(
    body: ChatCompletionRequest, responder: ResponderDep, owner: OwnerDep, idempotency_key: IdempotencyKey = None
) -> Any:
    return await responder.answer(chat_payload(body, responder.settings), body, owner, idempotency_key)


@router.post("/completions")
async def create_completion(
    body: CompletionRequest, responder: ResponderDep, owner: OwnerDep, idempotency_key: IdempotencyKey = None
) -> Any:
    return await responder.answer(completion_payload(body, responder.settings), body, owner, idempotency_key)
