"""``/users`` (admins only): list, add, disable. Disabling revokes the user's sessions."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import func, select

from collector.api.deps import AdminDep, SessionDep
from collector.api.devices import Limit, Skip
from collector.api.schemas import UserIn, UserPublic, UsersPublic
from collector.auth import CredentialError, audit, create_user, disable_user
from collector.db import begin_write
from collector.models import User

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=UsersPublic)
def list_users(_: AdminDep, session: SessionDep, skip: Skip = 0, limit: Limit = 100) -> UsersPublic:
    count = session.scalar(select(func.count()).select_from(User)) or 0
    rows = session.scalars(select(User).order_by(User.name).offset(skip).limit(limit))
    return UsersPublic(data=[UserPublic.model_validate(u) for u in rows], count=count)


@router.post(
    "",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "name taken"}, 422: {"description": "weak password"}},
)
def add_user(principal: AdminDep, session: SessionDep, body: UserIn) -> UserPublic:
    begin_write(session)
    if session.scalar(select(User.id).where(User.name == body.name)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="a user of that name exists")
    try:
        user = create_user(session, name=body.name, role=body.role, password=body.password)
    except CredentialError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    audit(session, actor=principal.name, action="user.add", target=body.name, detail=body.role)
    session.commit()
    return UserPublic.model_validate(user)


@router.post("/{name}/disable", response_model=UserPublic, responses={404: {}})
def disable(principal: AdminDep, session: SessionDep, name: str) -> UserPublic:
    begin_write(session)
    if not disable_user(session, name=name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="user not found")
    audit(session, actor=principal.name, action="user.disable", target=name)
    session.commit()
    user = session.scalars(select(User).where(User.name == name)).one()
    return UserPublic.model_validate(user)
