"""``/policy``: the active segmentation policy. Everyone with a valid token reads it
(sensors fetch it, with ``If-None-Match`` to skip unchanged downloads); admins replace it by
uploading the YAML text, which is validated by ``collector.policy.parse_policy`` first.
A refused policy answers 422 with the parser's ``path:line: field: problem``."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from collector.api.deps import AdminDep, PrincipalDep, SessionDep
from collector.api.schemas import PolicyPublic
from collector.auth import audit
from collector.db import begin_write
from collector.models import PolicyDocument
from collector.policy import MAX_POLICY_BYTES, PolicyError, parse_policy

router = APIRouter(prefix="/policy", tags=["policy"])
POLICY_SOURCE = "policy"  # the name PolicyError messages use for an uploaded document


async def raw_body(request: Request) -> bytes:
    """The request body as sent (the app-wide middleware bounds its size)."""
    return await request.body()


def _etag(doc: PolicyDocument) -> str:
    return f'"{doc.sha256}"'


@router.get(
    "",
    response_model=PolicyPublic,
    responses={304: {"description": "unchanged (If-None-Match)"}, 404: {}},
)
def read_policy(
    _: PrincipalDep, session: SessionDep, request: Request, response: Response
) -> PolicyPublic | Response:
    """The active policy (highest version) with its YAML text."""
    doc = session.scalars(
        select(PolicyDocument).order_by(PolicyDocument.version.desc()).limit(1)
    ).first()
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no policy uploaded yet")
    if request.headers.get("if-none-match") == _etag(doc):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": _etag(doc)})
    response.headers["ETag"] = _etag(doc)
    return PolicyPublic.model_validate(doc)


@router.put(
    "",
    response_model=PolicyPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": {"type": "string"}}},
        }
    },
    responses={409: {"description": "concurrent upload"}, 422: {"description": "invalid"}},
)
def replace_policy(
    principal: AdminDep, raw: Annotated[bytes, Depends(raw_body)], session: SessionDep
) -> PolicyPublic:
    """Replace the policy with the uploaded YAML (a new version; old ones are kept)."""
    if len(raw) > MAX_POLICY_BYTES:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"policy larger than {MAX_POLICY_BYTES}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "policy is not UTF-8") from None
    try:
        parse_policy(text, POLICY_SOURCE)
    except PolicyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    begin_write(session)
    version = (session.scalar(select(func.max(PolicyDocument.version))) or 0) + 1
    doc = PolicyDocument(
        version=version,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        created_by=principal.name,
    )
    session.add(doc)
    audit(session, actor=principal.name, action="policy.replace", target=f"version {version}")
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="another policy was uploaded at the same time"
        ) from None
    return PolicyPublic.model_validate(doc)
