"""POST /v1/embeddings: through the queue to an embedding worker of the model, answered as one object."""

from typing import Any

from fastapi import APIRouter

from api.deps import OwnerDep
from api.payloads import embedding_payload
from api.routes.generate import IdempotencyKey, ResponderDep
from shared.embedding_schema import EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["embeddings"])


@router.post("/embeddings")
async def create_embedding(
    body: EmbeddingRequest, responder: ResponderDep, owner: OwnerDep, idempotency_key: IdempotencyKey = None
) -> Any:
    return await responder.answer_once(embedding_payload(body, responder.settings), owner, idempotency_key)
