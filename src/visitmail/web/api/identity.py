"""Who am I, the organization's users, and API tokens."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from visitmail.domain.errors import NotFound
from visitmail.domain.identity import Organization
from visitmail.services import identity, passwords
from visitmail.web.api.schemas import (
    ErrorResponse,
    Me,
    OrganizationOut,
    OrganizationUpdate,
    PasswordChange,
    PasswordResetDone,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserCreated,
    UserOut,
    UserUpdate,
)
from visitmail.web.deps import AdminDep, PrincipalDep, ReadUowDep, RuntimeDep, UowDep

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}

router = APIRouter(prefix="/api/v1", tags=["identity"], responses=ERRORS)


@router.get("/me", summary="The token's user and organization")
async def me(principal: PrincipalDep, uow: ReadUowDep) -> Me:
    org = await uow.organizations.get(principal.organization_id)
    if org is None:  # the token outlived its organization
        raise NotFound("no such organization")
    return Me(user=UserOut.of(principal.user), organization=_org_out(org))


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change your own password",
    description="Checks `current_password` (a wrong one is answered 422 with code "
    "`wrong_password` and counts as a failed login: 429 after too many) and the rules for "
    "`new_password` (12 to 1024 characters, not the current one); every error names its "
    "field. Ends every web session of the user; API tokens stay valid. Audited without "
    "the password.",
    responses={429: {"model": ErrorResponse}},
)
async def change_my_password(
    body: PasswordChange, principal: PrincipalDep, uow: UowDep, runtime: RuntimeDep
) -> None:
    await passwords.change_own_password(
        uow,
        runtime.hasher,
        principal,
        current_password=body.current_password,
        new_password=body.new_password,
        policy=runtime.login_policy,
    )


@router.post(
    "/users/{user_id}/password-reset",
    summary="Reset a user's password to a one-time password (admin)",
    description="Generates a one-time password, returned this once: it logs in once, and "
    "the user must then choose a new password. Ends the user's web sessions and revokes "
    "their API tokens. A user of another organization is 404; your own account is 409 "
    "(change it with `POST /api/v1/me/password`). Audited without the password.",
)
async def reset_user_password(
    user_id: UUID, principal: AdminDep, uow: UowDep, runtime: RuntimeDep
) -> PasswordResetDone:
    reset = await passwords.reset_password(uow, runtime.hasher, principal, user_id)
    return PasswordResetDone(
        user=UserOut.of(reset.user),
        one_time_password=reset.one_time_password,
        sessions_ended=reset.sessions_ended,
        tokens_revoked=reset.tokens_revoked,
    )


def _org_out(org: Organization) -> OrganizationOut:
    return OrganizationOut(
        id=org.id,
        name=org.name,
        created_at=org.created_at,
        require_follow_up_consent=org.require_follow_up_consent,
    )


@router.get("/organization", summary="The token's organization and its settings")
async def get_organization(principal: PrincipalDep, uow: ReadUowDep) -> OrganizationOut:
    return _org_out(await identity.get_organization(uow, principal))


@router.patch("/organization", summary="Rename the organization or change its settings (admin)")
async def update_organization(
    body: OrganizationUpdate, principal: AdminDep, uow: UowDep
) -> OrganizationOut:
    org = await identity.update_organization(
        uow,
        principal,
        name=body.name,
        require_follow_up_consent=body.require_follow_up_consent,
    )
    return _org_out(org)


@router.get("/users", summary="The organization's users (admin)")
async def list_users(principal: AdminDep, uow: ReadUowDep) -> list[UserOut]:
    return [UserOut.of(u) for u in await identity.list_users(uow, principal)]


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Add a user (admin)")
async def create_user(
    body: UserCreate, principal: AdminDep, uow: UowDep, runtime: RuntimeDep
) -> UserCreated:
    created = await identity.create_user(
        uow,
        runtime.hasher,
        principal,
        email=body.email,
        role=body.role,
        display_name=body.display_name,
        password=body.password,
    )
    return UserCreated(
        **UserOut.of(created.user).model_dump(), initial_password=created.initial_password
    )


@router.get("/users/{user_id}", summary="One user (admin, or yourself)")
async def get_user(user_id: UUID, principal: PrincipalDep, uow: ReadUowDep) -> UserOut:
    return UserOut.of(await identity.get_user(uow, principal, user_id))


@router.patch("/users/{user_id}", summary="Change role, name or disabled (admin)")
async def update_user(user_id: UUID, body: UserUpdate, principal: AdminDep, uow: UowDep) -> UserOut:
    user = await identity.update_user(
        uow,
        principal,
        user_id,
        role=body.role,
        disabled=body.disabled,
        display_name=body.display_name,
    )
    return UserOut.of(user)


@router.get("/tokens", summary="API tokens (admins see all of the organization's)")
async def list_tokens(principal: PrincipalDep, uow: ReadUowDep) -> list[TokenOut]:
    return [TokenOut.of(t) for t in await identity.list_tokens(uow, principal)]


@router.post(
    "/tokens", status_code=status.HTTP_201_CREATED, summary="Issue an API token for yourself"
)
async def create_token(body: TokenCreate, principal: PrincipalDep, uow: UowDep) -> TokenCreated:
    issued = await identity.issue_token(uow, principal, name=body.name)
    return TokenCreated(**TokenOut.of(issued.token).model_dump(), token=issued.secret)


@router.delete("/tokens/{token_id}", summary="Revoke a token (yours, or any as admin)")
async def revoke_token(token_id: UUID, principal: PrincipalDep, uow: UowDep) -> TokenOut:
    return TokenOut.of(await identity.revoke_token(uow, principal, token_id))
