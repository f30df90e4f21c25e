"""``visitmail smtp test`` reports the sender-domain check beside the SMTP steps, asking
the DNS server the operator names in ``VISITMAIL_DNS_NAMESERVERS`` (here: the loopback
DNS server of the tests), and the domain's verdict never changes the exit code."""

from __future__ import annotations

import json
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.integration.cli.test_smtp_cli import Site, _Sink, cli
from tests.support.dns_server import DnsTestServer
from tests.support.processes import free_port
from visitmail.domain.smtp_settings import Security, SmtpSettings


async def test_smtp_test_reports_the_domain_check(
    tmp_path: Path, dns_server: DnsTestServer
) -> None:
    site = Site(tmp_path)
    await site.create()
    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await site.save(
            SmtpSettings(
                host="127.0.0.1",
                port=port,
                security=Security.NONE,
                sender_email="sales@fair-cli.example",
            ),
            password=None,
        )
        dns_server.serve(
            [
                ("fair-cli.example", "TXT", "v=spf1 ip4:127.0.0.1 +all"),
                ("_dmarc.fair-cli.example", "TXT", "v=DMARC1; p=reject"),
            ]
        )
        env = {
            **site.env,
            "VISITMAIL_SMTP_ALLOWED_NETWORKS": "127.0.0.0/8",
            "VISITMAIL_DNS_NAMESERVERS": f"127.0.0.1:{dns_server.port}",
        }
        args = ["smtp", "test", "--org", str(site.org_id)]
        as_json = await cli([*args, "--json", "--dkim-selector", "vm1"], env, site.tmp)
        assert as_json.returncode == 0, as_json.stdout + as_json.stderr  # SPF error: still 0
        report = json.loads(as_json.stdout)
        assert report["ok"] is True
        domain = report["domain"]
        assert domain["domain"] == "fair-cli.example"
        assert domain["verdict"] == "error"
        spf, dkim, dmarc = domain["checks"]
        assert (spf["verdict"], spf["summary"]) == ("error", "'+all' authorizes every server")
        assert spf["records"][0]["value"] == "v=spf1 ip4:127.0.0.1 -all"
        assert dkim["details"]["selectors"] == ["vm1"]
        assert dkim["verdict"] == "error"
        assert dmarc["details"]["policy"] == "reject"
        assert ("vm1._domainkey.fair-cli.example", "TXT") in dns_server.queries

        table = await cli(args, env, site.tmp)
        assert table.returncode == 0, table.stdout + table.stderr
        assert "Sender domain fair-cli.example" in table.stdout
        assert "'+all' lets every server" in table.stdout

        bad = await cli([*args, "--dkim-selector", "no good"], env, site.tmp)
        assert bad.returncode == 2
        assert "dkim-selector" in bad.stderr
    finally:
        controller.stop()
