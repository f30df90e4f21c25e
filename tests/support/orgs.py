"""Create organizations and users through the real services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from visitmail.domain.identity import Organization, Principal, User
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import identity


@dataclass(frozen=True)
class OrgFixture:
    organization: Organization
    admin: User
    admin_password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def principal(self) -> Principal:
        return Principal(user=self.admin, via="token")


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def new_org(runtime: Runtime, name: str = "Acme") -> OrgFixture:
    async with runtime.uow() as uow:
        created = await identity.create_organization(
            uow,
            runtime.hasher,
            name=name,
            admin_email=unique_email("admin"),
            admin_name="Ada Admin",
        )
    return OrgFixture(created.organization, created.admin, created.admin_password, created.token)


async def new_member(runtime: Runtime, org: OrgFixture, role: Role) -> tuple[User, str]:
    """A user of ``org`` with ``role`` and an API token of their own: ``(user, token)``."""
    async with runtime.uow() as uow:
        made = await identity.create_user(
            uow,
            runtime.hasher,
            org.principal,
            email=unique_email(role.value),
            role=role,
            display_name=f"{role.value.replace('_', ' ').title()} Tester",
        )
    async with runtime.uow() as uow:
        issued = await identity.issue_token(
            uow, Principal(user=made.user, via="token"), name="test"
        )
    return made.user, issued.secret
