"""OpenAI Files for the Batch API: upload, retrieve, content, delete."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import StreamingResponse

from api.deps import OwnerDep, RedisDep, SettingsDep
from api.files import file_object, iter_lines, lines_key_of, load_file, store_upload
from api.listing import page
from shared import names
from shared.errors import InvalidRequest

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.post("")
async def upload_file(
    owner: OwnerDep,
    redis: RedisDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
) -> dict[str, Any]:
    if purpose != "batch":
        raise InvalidRequest("Only purpose 'batch' is supported by this server.", param="purpose")
    return await store_upload(redis, settings, file, owner)


@router.get("")
async def list_files(
    owner: OwnerDep, redis: RedisDep, settings: SettingsDep, limit: int = 20, after: str | None = None
) -> Any:
    async def render(file_id: str) -> dict[str, Any]:
        return file_object(file_id, await load_file(redis, file_id, owner), settings)

    listed = await page(redis, names.owner_index_key(owner, "files"), max(1, min(limit, 100)), after, render)
    # ListFilesResponse requires both cursors as strings: an empty list has "" (OpenAI itself sends null).
    return {"first_id": "", "last_id": "", **listed}


@router.get("/{file_id}")
async def retrieve_file(file_id: str, owner: OwnerDep, redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    return file_object(file_id, await load_file(redis, file_id, owner), settings)


@router.get("/{file_id}/content")
async def file_content(file_id: str, owner: OwnerDep, redis: RedisDep) -> StreamingResponse:
    record = await load_file(redis, file_id, owner)
    return StreamingResponse(iter_lines(redis, lines_key_of(file_id, record)), media_type="application/jsonl")


@router.delete("/{file_id}")
async def delete_file(file_id: str, owner: OwnerDep, redis: RedisDep) -> dict[str, Any]:
    record = await load_file(redis, file_id, owner)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(names.file_key(file_id))
        if not record.get("batch"):
            pipe.delete(names.file_lines_key(file_id))
        pipe.zrem(names.owner_index_key(owner, "files"), file_id)
        await pipe.execute()
    return {"id": file_id, "object": "file", "deleted": True}
