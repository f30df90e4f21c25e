"""Request and response bodies shared by the API routers. Requests forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from visitmail.domain.identity import ApiToken, User
from visitmail.domain.roles import Role

#: The largest value any integer input takes (``offset``, a revision number):
#: 32-bit, so no value that passes validation can overflow a database integer (a 500).
MAX_INPUT_INT = 2**31 - 1


class Strict(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class UserOut(BaseModel):
    id: UUID
    email: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime
    must_change_password: bool = Field(
        default=False,
        description="an admin reset the password: the one-time password logs in once, "
        "and the user must choose a new one before anything else",
    )

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
            must_change_password=user.must_change_password,
        )


class UserCreate(Strict):
    email: str = Field(max_length=320)
    role: Role
    display_name: str = Field(
        max_length=200,
        description="the user's name (required): it signs the follow-ups they send and "
        "names them as the reporter",
    )
    password: str | None = Field(
        default=None, max_length=1024, description="omit to have one generated and returned once"
    )


class UserCreated(UserOut):
    initial_password: str | None = Field(
        default=None, description="present only when generated; shown this once"
    )


class UserUpdate(Strict):
    role: Role | None = None
    disabled: bool | None = None
    display_name: str | None = Field(default=None, max_length=200)


class PasswordChange(Strict):
    current_password: str = Field(
        max_length=1024, description="the password in use now (write-only, never echoed)"
    )
    new_password: str = Field(
        max_length=1024,
        description="12 to 1024 characters, not the current one (write-only, never echoed)",
    )


class PasswordResetDone(BaseModel):
    user: UserOut
    one_time_password: str = Field(
        description="shown this once, stored only as its hash: it logs in once, and the "
        "user must then choose a new password"
    )
    sessions_ended: int = Field(description="the user's web sessions that were ended")
    tokens_revoked: int = Field(description="the user's API tokens that were revoked")


class TokenOut(BaseModel):
    id: UUID
    name: str
    prefix: str
    user_id: UUID
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            user_id=token.user_id,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreate(Strict):
    name: str = Field(max_length=200)


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown this once, stored only as a hash")


class OrganizationOut(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    require_follow_up_consent: bool = Field(
        default=True, description="follow-up emails only to leads who consented"
    )


class OrganizationUpdate(Strict):
    name: str | None = Field(default=None, max_length=200)
    require_follow_up_consent: bool | None = None


class Me(BaseModel):
    user: UserOut
    organization: OrganizationOut
