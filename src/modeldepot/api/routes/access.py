"""``/auth/keys`` and ``/audit`` (extensions, admin only): API keys and the audit log.

Keys are usually made with ``modeldepot keys create`` on the machine (the first one must
be); these routes let an admin manage them remotely. A new key is answered once, in the
201 body; it is never shown again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from modeldepot.api.deps import ServicesDep
from modeldepot.api.envelope import error_responses
from modeldepot.api.pagination import Page, PageRequest, Pagination, page_query
from modeldepot.api.routes import API_PREFIX
from modeldepot.auth.audit import AUDIT_SORT_FIELDS, AuditEntry
from modeldepot.auth.keys import KEY_NAME_PATTERN, KEY_SORT_FIELDS, KeyInfo, Role

router = APIRouter(prefix=API_PREFIX, tags=["access"])

KeyName = Annotated[
    str,
    Path(
        description="The key's name: 1-64 letters, digits, '.', '_' or '-'",
        pattern=KEY_NAME_PATTERN,
    ),
]


class KeyPublic(BaseModel):
    name: str
    role: Role
    key_id: str = Field(description="Public id: the part of the key after 'mdk_'")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute")

    @classmethod
    def of(cls, info: KeyInfo) -> KeyPublic:
        return cls(
            name=info.name,
            role=info.role,
            key_id=info.key_id,
            created_at=info.created_at,
            last_used_at=info.last_used_at,
        )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=KEY_NAME_PATTERN, description="A name to recognise it by")
    role: Role = Field(description="read: sees; user: also downloads and checks; admin: all")


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown this once, store it now")


class KeyRevoked(BaseModel):
    success: bool
    revoked: KeyPublic


@router.get(
    "/auth/keys",
    response_model=Page[KeyPublic],
    responses=error_responses(422),
)
async def list_keys(
    services: ServicesDep,
    page: Annotated[PageRequest, Depends(page_query(KEY_SORT_FIELDS, "name"))],
) -> Page[KeyPublic]:
    """API keys (never their secrets)."""
    keys, total = await services.keys.page(
        sort=page.sort, descending=page.descending, offset=page.offset, limit=page.limit
    )
    return Page(data=[KeyPublic.of(k) for k in keys], pagination=Pagination.of(page, total))


@router.post(
    "/auth/keys",
    response_model=KeyCreated,
    status_code=201,
    responses=error_responses(400, 409, 422),
)
async def create_key(body: KeyCreate, services: ServicesDep, response: Response) -> KeyCreated:
    """A new key (409 ``KEY_EXISTS`` if the name is taken)."""
    info, key = await services.keys.create(body.name, body.role)
    response.headers["Cache-Control"] = "no-store"  # the body holds a secret
    return KeyCreated(**KeyPublic.of(info).model_dump(), key=key)


@router.delete(
    "/auth/keys/{name}",
    response_model=KeyRevoked,
    responses=error_responses(404, 422),
)
async def revoke_key(name: KeyName, services: ServicesDep) -> KeyRevoked:
    """Revoke a key: it stops working at once (404 ``KEY_NOT_FOUND``)."""
    info = await services.keys.revoke(name)
    return KeyRevoked(success=True, revoked=KeyPublic.of(info))


@router.get("/audit", response_model=Page[AuditEntry], responses=error_responses(422))
async def audit_log(
    services: ServicesDep,
    page: Annotated[PageRequest, Depends(page_query(AUDIT_SORT_FIELDS, "at"))],
) -> Page[AuditEntry]:
    """Admin actions: who, what, on what, when and how it ended (refusals included)."""
    entries, total = await services.audit.page(
        sort=page.sort, descending=page.descending, offset=page.offset, limit=page.limit
    )
    return Page(data=entries, pagination=Pagination.of(page, total))
