"""The sender-domain check: SPF, DKIM and DMARC of the From domain, judged for the provider
the mail goes through, from DNS answers already gathered. No I/O.

Each check gets one verdict (:class:`Verdict`): ``ok``; ``warning`` (mail goes out, but
something weakens delivery or a receiver may object); ``error`` (receivers will fail the
check or reject the mail); ``unknown`` (the answers do not allow a verdict: a lookup
failed, or the check would need something only the admin knows, such as the DKIM
selector). A verdict is never guessed: when in doubt it is ``unknown``.

Every non-``ok`` verdict carries the plain-words reason and, where a DNS change fixes it,
the exact record to publish (:class:`RecordChange`). An SPF change is always *one* record,
the existing one with the provider merged in, never a second ``v=spf1`` record.

Alignment (DMARC, RFC 7489 §3.1): SPF aligns only when the envelope sender (Return-Path)
is on the From domain. Microsoft 365, Google and a custom server keep the sender's own
address there; relays (SendGrid, SES, Mailgun, Postmark, Mandrill, Brevo, SparkPost) put
their own bounce domain there, so through them only DKIM can align. A domain whose DMARC
policy is ``reject`` (or ``quarantine``) and where nothing aligns has its mail rejected
(or sent to spam): that is an ``error``.

The DMARC record is looked up at ``_dmarc.<domain>`` and, if missing, at the organizational
domain (RFC 7489 §6.6.3), which the caller computes (a public-suffix rule) and passes in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from visitmail.domain.dns_answers import DnsSnapshot, Lookup, LookupStatus
from visitmail.domain.sending_providers import SendingProvider
from visitmail.domain.spf import MAX_LOOKUPS, SpfFacts, evaluate_spf, merged_spf

BULK_THRESHOLD_PER_DAY = 5000


class Verdict(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    UNKNOWN = "unknown"


_RANK = {Verdict.OK: 0, Verdict.UNKNOWN: 1, Verdict.WARNING: 2, Verdict.ERROR: 3}


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    return max(verdicts, key=_RANK.__getitem__, default=Verdict.UNKNOWN)


@dataclass(frozen=True, slots=True)
class RecordChange:
    """A DNS record to publish. ``replaces``: the record it replaces (same name), if any."""

    action: str  # "add" | "replace"
    type: str  # "TXT" | "CNAME"
    name: str
    value: str
    replaces: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # "spf" | "dkim" | "dmarc"
    verdict: Verdict
    summary: str  # one line
    explanation: str  # why, in plain words
    found: tuple[str, ...] = ()  # the published records the verdict is about
    records: tuple[RecordChange, ...] = ()  # what to publish
    details: dict[str, str | int | list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BulkRequirement:
    name: str
    met: bool | None  # None: cannot tell
    explanation: str


@dataclass(frozen=True, slots=True)
class DomainReport:
    domain: str
    provider: str | None  # the provider id the check judged for (None: custom server)
    provider_name: str | None
    checks: tuple[Check, ...]
    bulk_applies: bool | None  # None: the daily volume is not limited, so it may
    bulk: tuple[BulkRequirement, ...]
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> Verdict:
        return worst([c.verdict for c in self.checks])

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


@dataclass(frozen=True, slots=True)
class DomainFacts:
    """What the check is told besides DNS: the From domain, provider, SMTP host and its
    addresses, extra DKIM selectors, the daily volume and one-click unsubscribe."""

    domain: str
    organizational_domain: str
    provider: SendingProvider | None
    provider_name: str | None = None
    smtp_host: str | None = None
    smtp_host_addresses: Lookup | None = None
    selectors: tuple[str, ...] = ()
    per_day: int | None = None
    one_click_unsubscribe: bool = True


# --- SPF -----------------------------------------------------------------------------------


def _spf_add_terms(facts: DomainFacts) -> tuple[list[str], str]:
    """The terms that would authorize the sender, and in words who they authorize."""
    if facts.provider is not None and facts.provider.spf_includes:
        return [f"include:{facts.provider.spf_includes[0]}"], facts.provider.name
    host = facts.smtp_host_addresses
    if host is not None and host.status is LookupStatus.FOUND:
        terms = [("ip6:" if ":" in a else "ip4:") + a for a in host.values[:4]]
        return terms, f"the SMTP server {facts.smtp_host}"
    return [], f"the SMTP server {facts.smtp_host}" if facts.smtp_host else "your mail server"


def assess_spf(facts: DomainFacts, snapshot: DnsSnapshot) -> tuple[Check, bool | None]:
    """The SPF check and whether SPF passes for the sender (None: cannot tell)."""
    domain = facts.domain
    spf = evaluate_spf(domain, snapshot)
    details: dict[str, str | int | list[str]] = {
        "lookups": spf.lookups,
        "void_lookups": spf.void_lookups,
    }
    found = tuple(spf.records)
    add, whom = _spf_add_terms(facts)

    def change(value: str, note: str | None = None) -> tuple[RecordChange, ...]:
        action = "replace" if found else "add"
        return (RecordChange(action, "TXT", domain, value, found, note),)

    if spf.unreadable:
        return Check(
            "spf",
            Verdict.UNKNOWN,
            "SPF record could not be read",
            f"The TXT records of {domain} could not be looked up (the DNS server did not "
            "answer in time). Run the check again.",
            details=details,
        ), None
    if not found:
        value = merged_spf([], add) if add else None
        return Check(
            "spf",
            Verdict.ERROR,
            "no SPF record",
            f"{domain} publishes no SPF record, so receivers cannot tell that {whom} may send "
            "for it; many treat such mail as suspicious and Gmail, Yahoo and Outlook.com "
            "require SPF.",
            records=change(value) if value else (),
            details=details,
        ), False
    if len(found) > 1:
        return Check(
            "spf",
            Verdict.ERROR,
            f"{len(found)} SPF records (only one is allowed)",
            f"{domain} publishes {len(found)} v=spf1 records. Receivers treat that as a "
            "permanent error and SPF fails for every message. Publish one record that "
            "combines them and delete the others.",
            found=found,
            records=change(merged_spf(found, add)),
            details=details,
        ), False

    authorized = _authorized(facts, spf)
    if facts.provider is not None and facts.provider.spf_includes:
        details["provider_include"] = facts.provider.spf_includes[0]
    problems: list[str] = []
    summaries: list[str] = []  # one short line per problem, the first is the summary
    verdict = Verdict.OK
    if spf.permerror:
        verdict = Verdict.ERROR
        if spf.lookups > MAX_LOOKUPS:
            summaries.append(f"{spf.lookups} DNS lookups (at most {MAX_LOOKUPS})")
            problems.append(
                f"The record needs {spf.lookups} DNS lookups through its includes; at most "
                f"{MAX_LOOKUPS} are allowed, so receivers fail SPF with a permanent error. "
                "Remove includes of services you no longer use, or replace an include by the "
                "ip4:/ip6: ranges it lists."
            )
        if spf.problems:
            summaries.append("SPF permanent error")
            problems.extend(
                f"Permanent error: {p.removesuffix(' (permerror)')}." for p in spf.problems
            )
    all_q = spf.all_qualifier
    if all_q == "+":
        verdict = Verdict.ERROR
        summaries.append("'+all' authorizes every server")
        problems.append(
            "'+all' lets every server on the internet send as this domain: SPF protects "
            "nothing. End the record with -all (or ~all)."
        )
    elif all_q == "?":
        verdict = max(verdict, Verdict.WARNING, key=_RANK.__getitem__)
        summaries.append("'?all' is neutral")
        problems.append(
            "'?all' is neutral: it does not tell receivers to distrust others. Use -all or ~all."
        )
    elif all_q is None and not spf.permerror:
        verdict = max(verdict, Verdict.WARNING, key=_RANK.__getitem__)
        summaries.append("no 'all' term")
        problems.append("The record has no 'all' term: end it with -all (or ~all).")

    records: tuple[RecordChange, ...] = ()
    if authorized is False:
        verdict = (
            Verdict.ERROR
            if facts.provider is not None
            else max(verdict, Verdict.WARNING, key=_RANK.__getitem__)
        )
        fixed = merged_spf(found, add)
        if all_q in ("+", "?"):
            fixed = fixed.replace(f"{all_q}all", "-all")
        extra = (
            f" Adding it makes {spf.lookups + 1} lookups: over the limit of {MAX_LOOKUPS}, "
            "so also remove an include."
            if add and add[0].startswith("include:") and spf.lookups + 1 > MAX_LOOKUPS
            else ""
        )
        if facts.provider is not None:
            summaries.insert(0, f"SPF does not authorize {whom}")
            problems.insert(
                0,
                f"The SPF record does not authorize {whom} ({add[0]} is missing), so mail "
                "sent through it fails SPF. Change the record as shown: one record, with the "
                "include added; never publish a second v=spf1 record." + extra,
            )
        else:
            summaries.insert(0, "the SMTP server is not in the SPF record")
            problems.insert(
                0,
                f"The SMTP server's addresses are not in the SPF record. If {facts.smtp_host} "
                "itself delivers the mail, add them; if it hands mail to another relay, that "
                "relay's addresses are the ones to list instead." + extra,
            )
        records = change(fixed) if add else ()
    elif authorized is None and verdict is Verdict.OK:
        verdict = Verdict.UNKNOWN
        why = "; ".join(dict.fromkeys(spf.undecidable)) or "the SMTP host has no address"
        summaries.insert(0, f"cannot tell whether SPF authorizes {whom}")
        problems.insert(
            0,
            f"Whether the record authorizes {whom} cannot be told from DNS alone ({why}). "
            "The Authentication-Results header of a test message tells for sure.",
        )
    elif all_q in ("+", "?") or (all_q is None and not spf.permerror):
        records = change(_with_all(found[0]))
    if verdict is Verdict.OK:
        summary = f"SPF authorizes {whom}"
        explanation = (
            f"One SPF record, {spf.lookups} of {MAX_LOOKUPS} DNS lookups, and it authorizes {whom}."
        )
    else:
        summary = summaries[0] if summaries else "SPF needs attention"
        explanation = " ".join(problems)
    return Check(
        "spf", verdict, summary, explanation, found=found, records=records, details=details
    ), (False if spf.permerror else authorized)  # a permerror fails SPF for every sender


def _with_all(record: str) -> str:
    tokens = [t for t in record.split() if t.lower().lstrip("+-~?") != "all"]
    return " ".join([*tokens, "-all"])


def _authorized(facts: DomainFacts, spf: SpfFacts) -> bool | None:
    provider = facts.provider
    if provider is not None and provider.spf_includes:
        if any(inc in spf.includes for inc in provider.spf_includes):
            return True
        host = facts.smtp_host_addresses
        if host is not None and host.status is LookupStatus.FOUND and spf.covers(host.values):
            return True
        # An include that could not be read may hide the provider's include.
        return None if spf.unread_includes else False
    host = facts.smtp_host_addresses
    if host is None or host.status is not LookupStatus.FOUND:
        return None
    return spf.covers(host.values)


# --- DKIM ----------------------------------------------------------------------------------


def _selectors(names: Sequence[str]) -> str:
    if len(names) == 1:
        return f"selector {names[0]}"
    return f"selectors {', '.join(names[:-1])} and {names[-1]}"


def dkim_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def _dkim_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _dkim_state(selector: str, domain: str, snapshot: DnsSnapshot) -> tuple[str, str | None]:
    """("key" | "revoked" | "cname_only" | "missing" | "invalid" | "unknown", record)."""
    name = dkim_name(selector, domain)
    txt = snapshot.get_txt(name)
    cname = snapshot.get_cname(name)
    if txt.status is LookupStatus.FOUND:
        keys = [v for v in txt.values if "p=" in v.replace(" ", "")]
        if not keys:
            return "invalid", txt.values[0] if txt.values else None
        tags = _dkim_tags(keys[0])
        if tags.get("v", "DKIM1") != "DKIM1" or tags.get("k", "rsa") not in ("rsa", "ed25519"):
            return "invalid", keys[0]
        return ("key" if tags.get("p") else "revoked"), keys[0]
    if txt.status is LookupStatus.ERROR:
        return "unknown", None
    if cname.status is LookupStatus.FOUND:
        return "cname_only", cname.values[0] if cname.values else None
    return "missing", None


def _dkim_changes(
    facts: DomainFacts, selectors: Sequence[str], explicit: bool
) -> tuple[RecordChange, ...]:
    hint = facts.provider.dkim_record if facts.provider is not None else None
    changes: list[RecordChange] = []
    for selector in selectors:
        name = dkim_name(selector, facts.domain)
        if hint is not None and not explicit:
            value = hint.value.format(
                selector=selector, domain_dashed=facts.domain.replace(".", "-")
            )
            changes.append(RecordChange("add", hint.type, name, value, note=hint.where))
        else:
            changes.append(
                RecordChange(
                    "add",
                    "TXT",
                    name,
                    "v=DKIM1; k=rsa; p=<public key>",
                    note="the public key of the key your server or provider signs with",
                )
            )
    return tuple(changes)


def assess_dkim(facts: DomainFacts, snapshot: DnsSnapshot) -> tuple[Check, bool | None]:
    """The DKIM check and whether mail will carry a DKIM signature aligned with From."""
    provider = facts.provider
    explicit = facts.selectors
    defaults = provider.dkim_selectors if provider is not None else ()
    selectors = tuple(dict.fromkeys([*explicit, *defaults]))
    if not selectors:
        where = f" {provider.note}" if provider is not None and provider.note else ""
        return Check(
            "dkim",
            Verdict.UNKNOWN,
            "no DKIM selector to check",
            "DKIM keys are published under a selector that only your mail server or provider "
            "knows. Enter the selector to check it." + where,
        ), None
    states = {s: _dkim_state(s, facts.domain, snapshot) for s in selectors}
    found = tuple(f"{dkim_name(s, facts.domain)}: {r}" for s, (_st, r) in states.items() if r)
    good = [s for s, (st, _r) in states.items() if st == "key"]
    details: dict[str, str | int | list[str]] = {"selectors": list(selectors)}
    if good:
        details["published"] = good
    revoked = [s for s, (st, _r) in states.items() if st == "revoked"]
    cname_only = [s for s, (st, _r) in states.items() if st == "cname_only"]
    invalid = [s for s, (st, _r) in states.items() if st == "invalid"]
    unknown = [s for s, (st, _r) in states.items() if st == "unknown"]
    certain = bool(explicit) or (provider is not None and provider.dkim_selectors_certain)
    required = list(explicit) or (
        list(defaults) if provider is not None and provider.dkim_all_required else []
    )
    missing_required = [s for s in required if states[s][0] != "key"]

    notes: list[str] = []
    if revoked:
        notes.append(
            f"The key of {_selectors(revoked)} is revoked (empty p=): signatures with it fail."
        )
    if invalid:
        notes.append(f"The record of {_selectors(invalid)} is not a DKIM key.")
    if cname_only:
        notes.append(
            f"The CNAME of {_selectors(cname_only)} points to no key yet"
            + (
                ": enable DKIM signing for the domain in the Microsoft Defender portal."
                if provider is not None and provider.id == "microsoft-365"
                else ": finish the domain setup at the provider."
            )
        )
    if good and not missing_required:
        text = f"DKIM key published for {_selectors(good)}"
        return Check(
            "dkim",
            Verdict.WARNING if revoked or invalid else Verdict.OK,
            text,
            f"{text}, so receivers can verify signatures made with it (d={facts.domain}, "
            "aligned with From)." + (" " + " ".join(notes) if notes else ""),
            found=found,
            details=details,
        ), True
    if good:  # some required selectors missing (Microsoft 365 rotates between two)
        return Check(
            "dkim",
            Verdict.WARNING,
            f"DKIM {_selectors(missing_required)} missing",
            f"The key of {_selectors(good)} is published but not {_selectors(missing_required)}"
            "; the provider switches between them when it rotates keys, and mail then "
            "fails DKIM. " + " ".join(notes),
            found=found,
            records=_dkim_changes(facts, missing_required, bool(explicit)),
            details=details,
        ), True
    if unknown and not (revoked or cname_only or invalid):
        return Check(
            "dkim",
            Verdict.UNKNOWN,
            "DKIM records could not be read",
            "The DNS server did not answer for " + ", ".join(unknown) + ". Run the check again.",
            details=details,
        ), None
    to_add = missing_required or list(selectors if certain else selectors[:1])
    who = provider.name if provider is not None else "your mail server"
    verdict = Verdict.ERROR if certain or revoked or cname_only else Verdict.WARNING
    head = (
        f"No DKIM key is published for {_selectors(selectors)}."
        if not (revoked or cname_only or invalid)
        else "No usable DKIM key is published."
    )
    tail = (
        f" Without it mail from {who} is not signed for {facts.domain}: DKIM cannot align "
        "with From, and Gmail, Yahoo and Outlook.com require it for bulk mail."
    )
    if not certain:
        tail += (
            " These are the provider's usual selectors; if it gave you another one, enter "
            "it to check it."
        )
    return Check(
        "dkim",
        verdict,
        "no DKIM key published" if not revoked else "DKIM key revoked",
        head + (" " + " ".join(notes) if notes else "") + tail,
        found=found,
        records=_dkim_changes(facts, to_add, bool(explicit)),
        details=details,
    ), False


# --- DMARC ---------------------------------------------------------------------------------


def _dmarc_records(lookup: Lookup) -> list[str]:
    return [
        v.strip()
        for v in lookup.values
        if v.strip().lower().replace(" ", "").startswith("v=dmarc1")
    ]


def _dmarc_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


def _suggest_dmarc(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"


def assess_dmarc(
    facts: DomainFacts,
    snapshot: DnsSnapshot,
    *,
    spf_authorized: bool | None,
    dkim_aligned: bool | None,
    dkim_changes: tuple[RecordChange, ...],
) -> tuple[Check, bool | None]:
    """The DMARC check and whether mail through the provider will align (pass DMARC)."""
    domain = facts.domain
    name = f"_dmarc.{domain}"
    lookup = snapshot.get_txt(name)
    records = _dmarc_records(lookup)
    at = name
    if not records and lookup.status is not LookupStatus.ERROR:
        org = facts.organizational_domain
        if org != domain:
            org_lookup = snapshot.get_txt(f"_dmarc.{org}")
            if _dmarc_records(org_lookup):
                lookup, records, at = org_lookup, _dmarc_records(org_lookup), f"_dmarc.{org}"
            elif org_lookup.status is LookupStatus.ERROR:
                lookup = org_lookup
    spf_aligns = spf_authorized if _envelope_on_domain(facts) else False
    aligned = _either(dkim_aligned, spf_aligns)
    details: dict[str, str | int | list[str]] = {"record_name": at}
    path = _alignment_words(facts, spf_aligns, dkim_aligned)

    if lookup.status is LookupStatus.ERROR and not records:
        return Check(
            "dmarc",
            Verdict.UNKNOWN,
            "DMARC record could not be read",
            f"The DNS server did not answer for {name}. Run the check again.",
            details=details,
        ), aligned
    if not records:
        return Check(
            "dmarc",
            Verdict.WARNING,
            "no DMARC record",
            f"{domain} publishes no DMARC policy. Receivers decide on their own what to do "
            "with mail that fails SPF and DKIM, and Gmail, Yahoo and Outlook.com require a "
            "DMARC record (p=none is enough) from bulk senders. " + path,
            records=(RecordChange("add", "TXT", name, _suggest_dmarc(domain)),),
            details=details,
        ), aligned
    if len(records) > 1:
        return Check(
            "dmarc",
            Verdict.ERROR,
            f"{len(records)} DMARC records (only one is allowed)",
            f"{at} publishes {len(records)} DMARC records; receivers then ignore DMARC "
            "altogether. Keep one.",
            found=tuple(records),
            records=(RecordChange("replace", "TXT", at, records[0], tuple(records)),),
            details=details,
        ), aligned
    record = records[0]
    tags = _dmarc_tags(record)
    inherited = at != name
    policy = (tags.get("sp") if inherited else None) or tags.get("p", "")
    policy = policy.lower()
    if policy not in ("none", "quarantine", "reject"):
        policy = "none" if "rua" in tags else ""
    details.update(
        {
            "policy": policy or "invalid",
            "pct": tags.get("pct", "100"),
            "adkim": tags.get("adkim", "r"),
            "aspf": tags.get("aspf", "r"),
        }
    )
    found = (f"{at}: {record}",)
    if not policy:
        return Check(
            "dmarc",
            Verdict.ERROR,
            "DMARC record without a valid policy",
            f"The record at {at} has no valid p= tag (none, quarantine or reject); receivers "
            "ignore it.",
            found=found,
            records=(RecordChange("replace", "TXT", at, _suggest_dmarc(domain), (record,)),),
            details=details,
        ), aligned
    strict = []
    if tags.get("adkim", "r").lower() == "s":
        strict.append("DKIM (adkim=s)")
    if tags.get("aspf", "r").lower() == "s":
        strict.append("SPF (aspf=s)")
    mode = (
        f" Alignment is strict for {' and '.join(strict)}: the signing or envelope domain "
        "must equal the From domain exactly, a subdomain does not count."
        if strict
        else ""
    )
    pct = tags.get("pct", "100")
    pct_note = f" The policy applies to {pct}% of failing mail." if pct != "100" else ""
    where = " (inherited from the organizational domain)" if inherited else ""
    if aligned is False and policy in ("reject", "quarantine"):
        fate = "rejected" if policy == "reject" else "delivered to spam"
        return Check(
            "dmarc",
            Verdict.ERROR,
            f"p={policy}: mail will be {fate}",
            f"The DMARC policy{where} is p={policy}, and mail sent through "
            f"{facts.provider_name or 'this server'} will not align: {path} Receivers will "
            f"treat it as failing DMARC, so it will be {fate}.{pct_note} Publish the DKIM "
            "key below so the provider signs for your domain (or relax the policy to p=none "
            "while you do).",
            found=found,
            records=dkim_changes,
            details=details,
        ), aligned
    if aligned is False:
        return Check(
            "dmarc",
            Verdict.WARNING,
            "p=none: mail fails DMARC (monitoring only)",
            f"The DMARC policy{where} is p=none, so nothing is rejected yet, but mail through "
            f"{facts.provider_name or 'this server'} fails DMARC: {path}{mode}",
            found=found,
            records=dkim_changes,
            details=details,
        ), aligned
    if aligned is None:
        return Check(
            "dmarc",
            Verdict.UNKNOWN,
            f"p={policy}: alignment cannot be told",
            f"The DMARC policy{where} is p={policy}. {path}{mode}",
            found=found,
            details=details,
        ), aligned
    monitoring = (
        " p=none only monitors; once reports show all your mail passing, move to "
        "p=quarantine or p=reject."
        if policy == "none"
        else ""
    )
    return Check(
        "dmarc",
        Verdict.OK,
        f"p={policy}, mail aligns",
        f"The DMARC policy{where} is p={policy} and mail through "
        f"{facts.provider_name or 'this server'} aligns: {path}{mode}{pct_note}{monitoring}",
        found=found,
        details=details,
    ), aligned


def _envelope_on_domain(facts: DomainFacts) -> bool:
    return facts.provider is None or facts.provider.envelope_on_sender_domain


def _either(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _alignment_words(facts: DomainFacts, spf_aligns: bool | None, dkim: bool | None) -> str:
    if _envelope_on_domain(facts):
        spf = {
            True: "SPF aligns (the envelope sender is your own address and SPF authorizes the "
            "server)",
            False: "SPF does not align (SPF does not authorize the server)",
            None: "whether SPF aligns cannot be told",
        }[spf_aligns]
    else:
        spf = (
            f"SPF does not align ({facts.provider_name} puts its own bounce domain in the "
            "Return-Path, unless you set up a custom return path there)"
        )
    dk = {
        True: "DKIM aligns (the provider signs with a key published on your domain)",
        False: "DKIM does not align (no key published for the provider's selector)",
        None: "whether DKIM aligns cannot be told",
    }[dkim]
    return f"{spf}; {dk}."


# --- the report ----------------------------------------------------------------------------


def _bulk(
    facts: DomainFacts,
    spf: Check,
    dkim: Check,
    dmarc: Check,
    aligned: bool | None,
) -> tuple[BulkRequirement, ...]:
    def met(check: Check) -> bool | None:
        if check.verdict is Verdict.UNKNOWN:
            return None
        return (
            check.verdict is not Verdict.ERROR
            if check.name == "dmarc"
            else (check.verdict is Verdict.OK)
        )

    dmarc_published = (
        None if dmarc.verdict is Verdict.UNKNOWN and not dmarc.found else bool(dmarc.found)
    )
    return (
        BulkRequirement("SPF", met(spf), "an SPF record that authorizes the sending server"),
        BulkRequirement("DKIM", met(dkim), "mail signed with a DKIM key on your domain"),
        BulkRequirement(
            "DMARC", dmarc_published, "a DMARC record on the From domain (p=none is enough)"
        ),
        BulkRequirement(
            "Alignment", aligned, "the From domain aligns with the SPF or the DKIM domain"
        ),
        BulkRequirement(
            "One-click unsubscribe",
            facts.one_click_unsubscribe,
            "marketing mail carries List-Unsubscribe and List-Unsubscribe-Post "
            "(RFC 8058); visitmail adds both to every follow-up to a lead",
        ),
    )


def assess(facts: DomainFacts, snapshot: DnsSnapshot) -> DomainReport:
    """The whole report for ``facts.domain`` over the gathered ``snapshot``."""
    spf, authorized = assess_spf(facts, snapshot)
    dkim, dkim_aligned = assess_dkim(facts, snapshot)
    dmarc, aligned = assess_dmarc(
        facts,
        snapshot,
        spf_authorized=authorized,
        dkim_aligned=dkim_aligned,
        dkim_changes=dkim.records,
    )
    bulk_applies = None if facts.per_day is None else facts.per_day > BULK_THRESHOLD_PER_DAY
    notes: list[str] = []
    if facts.provider is not None and facts.provider.note:
        notes.append(facts.provider.note)
    notes.append(
        "Gmail and Yahoo (since February 2024) and Outlook.com (since May 2025) require "
        f"senders of more than {BULK_THRESHOLD_PER_DAY:,} messages a day to their users to "
        "have SPF, DKIM and DMARC with alignment, and one-click unsubscribe in marketing mail."
    )
    return DomainReport(
        domain=facts.domain,
        provider=facts.provider.id if facts.provider is not None else None,
        provider_name=facts.provider_name,
        checks=(spf, dkim, dmarc),
        bulk_applies=bulk_applies,
        bulk=_bulk(facts, spf, dkim, dmarc, aligned),
        notes=tuple(notes),
    )
