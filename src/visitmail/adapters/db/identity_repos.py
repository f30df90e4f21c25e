"""SQL repositories for organizations, users, tokens, web sessions, login failures and the
audit log. Every tenant query filters on ``organization_id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import (
    ApiTokenRow,
    AuditRow,
    LoginFailureRow,
    OrganizationRow,
    UserRow,
    WebSessionRow,
)
from visitmail.domain.identity import ApiToken, Organization, PasswordState, User
from visitmail.domain.ids import new_id
from visitmail.domain.roles import Role


def _org(row: OrganizationRow) -> Organization:
    return Organization(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        require_follow_up_consent=row.require_follow_up_consent,
    )


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        organization_id=row.organization_id,
        email=row.email,
        display_name=row.display_name,
        role=Role(row.role),
        disabled=row.disabled,
        created_at=row.created_at,
        password_state=PasswordState(row.password_state or PasswordState.SET.value),
    )


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        organization_id=row.organization_id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class SqlOrganizations:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, name: str, now: datetime) -> Organization:
        row = OrganizationRow(
            id=new_id(), name=name, created_at=now, require_follow_up_consent=True
        )
        self._s.add(row)
        await self._s.flush()
        return _org(row)

    async def get(self, organization_id: uuid.UUID) -> Organization | None:
        row = await self._s.get(OrganizationRow, organization_id)
        return _org(row) if row else None

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(OrganizationRow)) or 0)

    async def update(
        self,
        organization_id: uuid.UUID,
        *,
        name: str | None = None,
        require_follow_up_consent: bool | None = None,
    ) -> Organization | None:
        row = await self._s.get(OrganizationRow, organization_id)
        if row is None:
            return None
        if name is not None:
            row.name = name
        if require_follow_up_consent is not None:
            row.require_follow_up_consent = require_follow_up_consent
        await self._s.flush()
        return _org(row)


class SqlUsers:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        self.changed = False  # a user's role, state or name changed (caches must forget)

    async def add(
        self,
        organization_id: uuid.UUID,
        *,
        email: str,
        display_name: str,
        role: Role,
        password_hash: str,
        now: datetime,
    ) -> User:
        row = UserRow(
            id=new_id(),
            organization_id=organization_id,
            email=email,
            display_name=display_name,
            role=role.value,
            password_hash=password_hash,
            disabled=False,
            created_at=now,
            updated_at=now,
            password_state=PasswordState.SET.value,
        )
        self._s.add(row)
        await self._s.flush()
        return _user(row)

    async def _row(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> UserRow | None:
        return await self._s.scalar(
            select(UserRow).where(UserRow.organization_id == organization_id, UserRow.id == user_id)
        )

    async def get(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
        row = await self._row(organization_id, user_id)
        return _user(row) if row else None

    async def list(self, organization_id: uuid.UUID) -> Sequence[User]:
        rows = await self._s.scalars(
            select(UserRow)
            .where(UserRow.organization_id == organization_id)
            .order_by(UserRow.created_at, UserRow.email)
        )
        return [_user(r) for r in rows]

    async def email_taken(self, email: str) -> bool:
        found = await self._s.scalar(select(UserRow.id).where(UserRow.email == email))
        return found is not None

    async def find_for_login(self, email: str) -> tuple[User, str] | None:
        row = await self._s.scalar(select(UserRow).where(UserRow.email == email))
        return (_user(row), row.password_hash) if row else None

    async def update(
        self,
        organization_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
        password_hash: str | None = None,
        password_state: PasswordState | None = None,
        now: datetime,
    ) -> User | None:
        row = await self._row(organization_id, user_id)
        if row is None:
            return None
        if password_state is not None:
            row.password_state = password_state.value
        if role is not None:
            row.role = role.value
        if disabled is not None:
            row.disabled = disabled
        if display_name is not None:
            row.display_name = display_name
        if password_hash is not None:
            row.password_hash = password_hash
        row.updated_at = now
        await self._s.flush()
        self.changed = True
        return _user(row)

    async def count_admins(self, organization_id: uuid.UUID) -> int:
        return int(
            await self._s.scalar(
                select(func.count())
                .select_from(UserRow)
                .where(
                    UserRow.organization_id == organization_id,
                    UserRow.role == Role.ADMIN.value,
                    UserRow.disabled.is_(False),
                )
            )
            or 0
        )


class SqlTokens:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        self.changed = False  # a token was revoked (caches must forget)

    async def add(
        self,
        organization_id: uuid.UUID,
        *,
        user_id: uuid.UUID,
        name: str,
        prefix: str,
        secret_hash: str,
        now: datetime,
    ) -> ApiToken:
        row = ApiTokenRow(
            id=new_id(),
            organization_id=organization_id,
            user_id=user_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            created_at=now,
        )
        self._s.add(row)
        await self._s.flush()
        return _token(row)

    async def find_active(self, secret_hash: str) -> tuple[ApiToken, User] | None:
        found = (
            await self._s.execute(
                select(ApiTokenRow, UserRow)
                .join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .where(
                    ApiTokenRow.secret_hash == secret_hash,
                    ApiTokenRow.revoked_at.is_(None),
                    UserRow.disabled.is_(False),
                    UserRow.organization_id == ApiTokenRow.organization_id,
                )
            )
        ).first()
        if found is None:
            return None
        return _token(found[0]), _user(found[1])

    async def list(
        self, organization_id: uuid.UUID, user_id: uuid.UUID | None = None
    ) -> Sequence[ApiToken]:
        query = select(ApiTokenRow).where(ApiTokenRow.organization_id == organization_id)
        if user_id is not None:
            query = query.where(ApiTokenRow.user_id == user_id)
        rows = await self._s.scalars(query.order_by(ApiTokenRow.created_at))
        return [_token(r) for r in rows]

    async def get(self, organization_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
        row = await self._s.scalar(
            select(ApiTokenRow).where(
                ApiTokenRow.organization_id == organization_id, ApiTokenRow.id == token_id
            )
        )
        return _token(row) if row else None

    async def revoke(self, organization_id: uuid.UUID, token_id: uuid.UUID, now: datetime) -> None:
        await self._s.execute(
            update(ApiTokenRow)
            .where(
                ApiTokenRow.organization_id == organization_id,
                ApiTokenRow.id == token_id,
                ApiTokenRow.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        self.changed = True

    async def revoke_for_user(
        self, organization_id: uuid.UUID, user_id: uuid.UUID, now: datetime
    ) -> int:
        revoked = await self._s.execute(
            update(ApiTokenRow)
            .where(
                ApiTokenRow.organization_id == organization_id,
                ApiTokenRow.user_id == user_id,
                ApiTokenRow.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        self.changed = True
        return int(getattr(revoked, "rowcount", 0) or 0)

    async def touch(self, token_id: uuid.UUID, now: datetime) -> None:
        await self._s.execute(
            update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=now)
        )


class SqlSessions:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(
        self,
        organization_id: uuid.UUID,
        *,
        user_id: uuid.UUID,
        secret_hash: str,
        csrf_token: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        self._s.add(
            WebSessionRow(
                id=new_id(),
                organization_id=organization_id,
                user_id=user_id,
                secret_hash=secret_hash,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=expires_at,
            )
        )
        await self._s.flush()

    async def find_active(self, secret_hash: str, now: datetime) -> tuple[User, str] | None:
        found = (
            await self._s.execute(
                select(WebSessionRow, UserRow)
                .join(UserRow, UserRow.id == WebSessionRow.user_id)
                .where(
                    WebSessionRow.secret_hash == secret_hash,
                    WebSessionRow.expires_at > now,
                    UserRow.disabled.is_(False),
                )
            )
        ).first()
        if found is None:
            return None
        return _user(found[1]), found[0].csrf_token

    async def delete(self, secret_hash: str) -> None:
        await self._s.execute(delete(WebSessionRow).where(WebSessionRow.secret_hash == secret_hash))

    async def delete_for_user(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> int:
        ended = await self._s.execute(
            delete(WebSessionRow).where(
                WebSessionRow.organization_id == organization_id,
                WebSessionRow.user_id == user_id,
            )
        )
        return int(getattr(ended, "rowcount", 0) or 0)


class SqlLoginFailures:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def record(self, key: str, now: datetime) -> None:
        self._s.add(LoginFailureRow(key=key, at=now))
        await self._s.flush()

    async def count_since(self, key: str, since: datetime) -> int:
        return int(
            await self._s.scalar(
                select(func.count())
                .select_from(LoginFailureRow)
                .where(LoginFailureRow.key == key, LoginFailureRow.at >= since)
            )
            or 0
        )

    async def oldest_since(self, key: str, since: datetime) -> datetime | None:
        return await self._s.scalar(
            select(func.min(LoginFailureRow.at)).where(
                LoginFailureRow.key == key, LoginFailureRow.at >= since
            )
        )

    async def clear(self, key: str) -> None:
        await self._s.execute(delete(LoginFailureRow).where(LoginFailureRow.key == key))


class SqlAuditLog:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def record(
        self,
        organization_id: uuid.UUID,
        *,
        actor_id: uuid.UUID | None,
        action: str,
        target: str,
        fields: Sequence[str],
        now: datetime,
    ) -> None:
        # A Core INSERT: every write use case records one, so the ORM's flush is not worth it.
        await self._s.execute(
            insert(AuditRow).values(
                organization_id=organization_id,
                actor_id=actor_id,
                action=action,
                target=target,
                fields=list(fields),
                at=now,
            )
        )
