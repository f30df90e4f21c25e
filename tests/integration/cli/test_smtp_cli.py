"""``visitmail keys rotate``, ``visitmail smtp test`` and ``visitmail smtp presets`` as an
operator runs them: real subprocesses against a fresh SQLite file and key file."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller

from tests.support.databases import sqlite_url
from tests.support.processes import cli_env, free_port, run_cli
from visitmail.adapters.crypto.keyring import load_file
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.dkim.keys import DkimpyKeys
from visitmail.adapters.render.mime import build_message
from visitmail.config import Settings
from visitmail.domain.dkim import DkimAlgorithm
from visitmail.domain.identity import Principal
from visitmail.domain.mail import Mailbox, MailSpec
from visitmail.domain.smtp_settings import Security, SmtpSettings
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import dkim as dkim_service
from visitmail.services import smtp_config
from visitmail.services.ports import SmtpSecretField

PASSWORD = "Cli-Secret-Passw0rd!"


async def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, args, env, cwd)


class Site:
    """A fresh embedded installation: SQLite file, key file, one organization."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.url = sqlite_url(tmp)
        self.env = cli_env(tmp, self.url)
        self.key_file = tmp / "var" / "master.key"
        self.org_id = uuid.UUID(int=0)
        self.admin_email = ""

    def runtime(self, **overrides: object) -> Runtime:
        values: dict[str, object] = {"database_url": self.url, "var_dir": self.tmp / "var"}
        values.update(overrides)
        return build_runtime(Settings(**values), create_key=False, fast_hashing=True)  # type: ignore[arg-type]

    async def create(self) -> None:
        created = await cli(
            [
                "org",
                "create",
                "Fair Team",
                "--admin-email",
                "boss@example.com",
                "--admin-name",
                "Bo",
            ],
            self.env,
            self.tmp,
        )
        assert created.returncode == 0, created.stderr
        found = re.search(r"organization id:\s+([0-9a-f-]{36})", created.stdout)
        assert found
        self.org_id = uuid.UUID(found.group(1))
        self.admin_email = "boss@example.com"

    async def save(self, settings: SmtpSettings, password: str | None = PASSWORD) -> None:
        runtime = self.runtime()
        try:
            async with runtime.uow() as uow:
                found = await uow.users.find_for_login(self.admin_email)
                assert found
                changes = {SmtpSecretField.PASSWORD: password} if password else {}
                await smtp_config.put_settings(
                    uow,
                    SecretBox(runtime.keyring),
                    Principal(user=found[0], via="token"),
                    settings,
                    changes,
                )
        finally:
            await runtime.close()

    async def token_and_password(self, **overrides: object) -> tuple[str, str | None]:
        runtime = self.runtime(**overrides)
        try:
            async with runtime.uow() as uow:
                stored = await uow.smtp_settings.get(self.org_id)
                assert stored
                token = stored.sealed[SmtpSecretField.PASSWORD]
                _s, secrets = await smtp_config.load_for_sending(
                    uow, SecretBox(runtime.keyring), self.org_id
                )
        finally:
            await runtime.close()
        return token, secrets.password


SETTINGS = SmtpSettings(
    host="smtp.example.com",
    port=587,
    security=Security.STARTTLS,
    sender_email="sales@example.com",
    username="sales@example.com",
)


@pytest.fixture
async def site(tmp_path: Path) -> Site:
    made = Site(tmp_path)
    await made.create()
    return made


async def test_keys_rotate_adds_a_key_and_reseals_every_secret(site: Site) -> None:
    await site.save(SETTINGS)
    before = load_file(site.key_file)
    token, _ = await site.token_and_password()
    assert token.startswith(f"v1:{before.newest.key_id}:")

    rotated = await cli(["keys", "rotate"], site.env, site.tmp)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted: 1" in rotated.stdout
    assert "Restart every other visitmail process" in rotated.stderr
    after = load_file(site.key_file)
    assert len(after.keys) == len(before.keys) + 1
    assert after.key_ids[:-1] == before.key_ids
    token, password = await site.token_and_password()
    assert token.startswith(f"v1:{after.newest.key_id}:")
    assert password == PASSWORD

    again = await cli(["keys", "rotate"], site.env, site.tmp)
    assert again.returncode == 0, again.stderr
    assert "re-encrypted: 1" in again.stdout
    third = load_file(site.key_file)
    assert len(third.keys) == len(after.keys) + 1
    token, password = await site.token_and_password()
    assert token.startswith(f"v1:{third.newest.key_id}:")
    assert password == PASSWORD
    for output in (rotated.stdout, rotated.stderr, again.stdout, again.stderr):
        assert PASSWORD not in output


async def test_keys_rotate_reseals_dkim_keys_and_mail_still_verifies(site: Site) -> None:
    await site.save(SETTINGS)
    runtime = site.runtime()
    try:
        async with runtime.uow() as uow:
            found = await uow.users.find_for_login(site.admin_email)
            assert found
            admin = Principal(user=found[0], via="token")
            key = await dkim_service.generate_key(
                uow, SecretBox(runtime.keyring), DkimpyKeys(), admin, algorithm=DkimAlgorithm.RSA
            )
        async with runtime.uow() as uow:
            await dkim_service.update_state(uow, admin, enabled=True)
        async with runtime.uow() as uow:
            ((_key, before),) = await uow.dkim_keys.sealed_all(site.org_id)
    finally:
        await runtime.close()

    rotated = await cli(["keys", "rotate"], site.env, site.tmp)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted: 2" in rotated.stdout  # the SMTP password and the DKIM key
    ring = load_file(site.key_file)
    runtime = site.runtime()
    try:
        async with runtime.uow() as uow:
            ((_key, after),) = await uow.dkim_keys.sealed_all(site.org_id)
            signing = dkim_service.DkimSigning(SecretBox(runtime.keyring), DkimpyKeys())
            signer = await signing.load(uow, site.org_id, "sales@example.com")
    finally:
        await runtime.close()
    assert after != before and after.startswith(f"v1:{ring.newest.key_id}:")
    assert signer is not None
    mime = build_message(
        MailSpec(
            sender=Mailbox("sales@example.com"),
            to=(Mailbox("lead@example.org"),),
            subject="after keys rotate",
            text="signed\n",
        )
    ).mime
    record = key.record_value.encode()
    assert dkim.verify(
        signer.sign(mime),
        dnsfunc=lambda name, timeout=5: record if name == f"{key.record_name}.".encode() else None,
    )


async def test_keys_rotate_with_nothing_stored_is_fine(site: Site) -> None:
    reply = await cli(["keys", "rotate"], site.env, site.tmp)
    assert reply.returncode == 0, reply.stderr
    assert (
        "secret holders (SMTP settings + webhook secrets + DKIM keys + bounce mailboxes + "
        "relay webhooks): 0" in reply.stdout
    )


async def test_keys_from_the_environment_are_not_edited(site: Site) -> None:
    await site.save(SETTINGS)
    file_keys = site.key_file.read_text().splitlines()
    entries = [line for line in file_keys if line and not line.startswith("#")]
    env = {**site.env, "VISITMAIL_MASTER_KEYS": ",".join(entries)}
    refused = await cli(["keys", "rotate"], env, site.tmp)
    assert refused.returncode == 2
    assert "VISITMAIL_MASTER_KEYS" in refused.stderr
    assert "--reencrypt-only" in refused.stderr
    assert site.key_file.read_text().splitlines() == file_keys

    made = await cli(["keys", "new"], env, site.tmp)
    assert made.returncode == 0
    new_entry = made.stdout.strip()
    new_id = new_entry.split(":", 1)[0]
    env["VISITMAIL_MASTER_KEYS"] = ",".join([*entries, new_entry])
    reencrypted = await cli(["keys", "rotate", "--reencrypt-only"], env, site.tmp)
    assert reencrypted.returncode == 0, reencrypted.stderr
    assert "re-encrypted: 1" in reencrypted.stdout
    assert new_entry.split(":", 1)[1] not in reencrypted.stdout + reencrypted.stderr
    token, password = await site.token_and_password(master_keys=env["VISITMAIL_MASTER_KEYS"])
    assert token.startswith(f"v1:{new_id}:")
    assert password == PASSWORD


async def test_keys_rotate_reports_unreadable_secrets(site: Site) -> None:
    await site.save(SETTINGS)
    # the operator lost the key file: a new ring cannot open the stored secret
    site.key_file.unlink()
    site.key_file.write_text("k-other:" + "A" * 43 + "=\n")
    reply = await cli(["keys", "rotate"], site.env, site.tmp)
    assert reply.returncode == 1
    assert "unreadable: 1" in reply.stdout
    assert str(site.org_id) in reply.stderr


async def test_smtp_test_usage_errors_exit_2(site: Site) -> None:
    not_uuid = await cli(["smtp", "test", "--org", "acme"], site.env, site.tmp)
    assert not_uuid.returncode == 2
    assert "org" in not_uuid.stderr
    unknown = await cli(["smtp", "test", "--org", str(uuid.uuid4())], site.env, site.tmp)
    assert unknown.returncode == 2
    assert "no such organization" in unknown.stderr
    unsaved = await cli(["smtp", "test", "--org", str(site.org_id)], site.env, site.tmp)
    assert unsaved.returncode == 2
    assert "no SMTP settings" in unsaved.stderr
    await site.save(SETTINGS)
    bad_to = await cli(
        ["smtp", "test", "--org", str(site.org_id), "--send-to", "nope"], site.env, site.tmp
    )
    assert bad_to.returncode == 2
    assert "send_to" in bad_to.stderr


async def test_smtp_test_against_a_closed_port_fails_with_exit_1(site: Site) -> None:
    await site.save(
        SmtpSettings(
            host="127.0.0.1", port=free_port(), security=Security.NONE, sender_email="a@example.com"
        ),
        password=None,
    )
    env = {**site.env, "VISITMAIL_SMTP_ALLOWED_NETWORKS": "127.0.0.0/8"}
    reply = await cli(["smtp", "test", "--org", str(site.org_id), "--json"], env, site.tmp)
    assert reply.returncode == 1, reply.stderr
    report = json.loads(reply.stdout)
    assert report["ok"] is False
    failed = [s for s in report["steps"] if s["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["name"] == "connect"


class _Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        return "250 OK"


async def test_smtp_test_passes_against_a_working_server(site: Site) -> None:
    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await site.save(
            SmtpSettings(
                host="127.0.0.1", port=port, security=Security.NONE, sender_email="a@example.com"
            ),
            password=None,
        )
        env = {**site.env, "VISITMAIL_SMTP_ALLOWED_NETWORKS": "127.0.0.0/8"}
        table = await cli(["smtp", "test", "--org", str(site.org_id)], env, site.tmp)
        assert table.returncode == 0, table.stdout + table.stderr
        assert "connect" in table.stdout
        assert "OK" in table.stdout
        as_json = await cli(
            ["smtp", "test", "--org", str(site.org_id), "--json", "--send-to", "x@example.com"],
            env,
            site.tmp,
        )
        assert as_json.returncode == 0, as_json.stdout + as_json.stderr
        report = json.loads(as_json.stdout)
        assert report["ok"] is True
        assert {s["status"] for s in report["steps"]} <= {"passed", "skipped"}
    finally:
        controller.stop()


async def test_smtp_presets_lists_the_providers(tmp_path: Path) -> None:
    reply = await cli(["smtp", "presets"], cli_env(tmp_path), tmp_path)
    assert reply.returncode == 0, reply.stderr
    for expected in ("sendgrid", "smtp.office365.com", "email-smtp.eu-central-1.amazonaws.com"):
        assert expected in reply.stdout
