"""``newsletter doctor``: is the setup ready to send, and to be delivered?

Checks the settings (sender, postal address, https one-click unsubscribe, VERP bounces),
the DKIM key (readable, and the same as the public key published at
``<selector>._domainkey.<domain>``, with the domain aligned with From), and the SPF and
DMARC records of the sender's domain. DNS goes through dnspython; NEWSLETTER_DNS
(``HOST[:PORT]``) names the server to ask instead of the system's.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.tokens import domain_of

DNS_VARIABLE = "NEWSLETTER_DNS"


class Check(NamedTuple):
    """``level``: ok | warn | fail; ``fix``: what to do about it."""

    name: str
    level: str
    message: str
    fix: str = ""


def resolver():
    import dns.resolver

    given = os.environ.get(DNS_VARIABLE)
    if not given:
        return dns.resolver.Resolver()
    host, _, port = given.rpartition(":") if given.count(":") == 1 else (given, "", "")
    found = dns.resolver.Resolver(configure=False)
    found.nameservers = [host]
    found.port = int(port) if port else 53
    found.lifetime = 5.0
    return found


def txt(name: str, ask=None) -> list[str] | None:
    """The TXT records at ``name`` (each one's strings joined); [] when there are none,
    None when the lookup itself failed (no answer from the server)."""
    import dns.exception
    import dns.resolver

    try:
        answer = (ask or resolver()).resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException:
        return None
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, _, value = part.partition("=")
        if name.strip():
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def check_settings(settings: Settings) -> list[Check]:
    checks = []
    name = settings.file.name
    checks.append(Check("from", "ok", f"sender {settings.sender}") if settings.sender else
                  Check("from", "fail", "no sender", f"set `from: \"Name <news@yourdomain>\"` in {name}"))
    checks.append(Check("postal_address", "ok", "postal address set") if settings.postal_address else
                  Check("postal_address", "fail", "no postal address",
                        f"set `postal_address:` in {name} (CAN-SPAM and similar laws require one)"))
    url = settings.unsubscribe.url or ""
    if url.startswith("https://") and "{token}" in url:
        checks.append(Check("one-click", "ok", "https unsubscribe link with List-Unsubscribe-Post (RFC 8058)"))
    else:
        checks.append(Check("one-click", "fail", "no https unsubscribe URL with {token}: no one-click unsubscribe",
                            "set `unsubscribe: {url: https://yoursite/unsubscribe?token={token}}`; Gmail and"
                            " Yahoo require one-click unsubscribe of bulk senders"))
    if settings.bounces.address:
        checks.append(Check("bounces", "ok", f"VERP bounces to {settings.bounces.address}"
                            " (read them with `newsletter bounces`)"))
    else:
        checks.append(Check("bounces", "warn", "no bounce address: bounces go to From and name their recipient"
                            " only when the report does", "set `bounces: {address: bounces@yourdomain}`"
                            " (a mailbox that accepts bounces+anything@)"))
    return checks


def check_dkim(settings: Settings, ask=None) -> list[Check]:
    from newsletter.mailing.dkim import load_key, public_record

    dkim = settings.dkim
    if not (dkim.domain or dkim.selector or dkim.key_file):
        return [Check("dkim", "fail", "messages are not DKIM-signed",
                      "make a key (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem`),"
                      " set `dkim: {domain, selector, key_file}` and publish the record `newsletter doctor` prints")]
    if not (dkim.domain and dkim.selector and dkim.key_file):
        return [Check("dkim", "fail", "dkim needs domain, selector and key_file together", "complete `dkim:`")]
    try:
        key = load_key(dkim.key_file)
    except NewsletterError as e:
        return [Check("dkim key", "fail", e.message, e.hint or "")]
    wanted = public_record(key)
    checks = [Check("dkim key", "ok", f"{dkim.key_file.name} readable ({wanted.split(';')[1].strip()})")]
    sender = domain_of(settings.sender)
    if sender != dkim.domain.lower() and not sender.endswith("." + dkim.domain.lower()):
        checks.append(Check("dkim alignment", "fail", f"d={dkim.domain} is not the From domain {sender}: DMARC"
                            " fails", f"sign with the From domain ({sender}) or send from an address at {dkim.domain}"))
    name = f"{dkim.selector}._domainkey.{dkim.domain}"
    records = txt(name, ask)
    if records is None:
        checks.append(Check("dkim record", "warn", f"could not look up {name} (DNS did not answer)"))
    elif not records:
        checks.append(Check("dkim record", "fail", f"no TXT record at {name}", f"publish: {name} TXT \"{wanted}\""))
    elif any(_tags(r).get("p") == _tags(wanted)["p"] for r in records):
        checks.append(Check("dkim record", "ok", f"{name} publishes this key"))
    else:
        checks.append(Check("dkim record", "fail", f"{name} publishes another key than {dkim.key_file.name}",
                            f"publish: {name} TXT \"{wanted}\" (or point key_file at the matching key)"))
    return checks


def check_domain(settings: Settings, ask=None) -> list[Check]:
    domain = domain_of(settings.sender)
    if domain == "localhost":
        return []
    checks = []
    records = txt(domain, ask)
    spf = [r for r in records or [] if r.lower().startswith("v=spf1")]
    if records is None:
        checks.append(Check("spf", "warn", f"could not look up {domain} (DNS did not answer)"))
    elif not spf:
        checks.append(Check("spf", "fail", f"no SPF record for {domain}",
                            f"publish: {domain} TXT \"v=spf1 include:<your relay's SPF> -all\" (your relay's"
                            " documentation names it)"))
    elif len(spf) > 1:
        checks.append(Check("spf", "fail", f"{len(spf)} SPF records for {domain}: receivers treat that as none",
                            "merge them into one v=spf1 record"))
    elif spf[0].split()[-1] in ("+all", "all"):
        checks.append(Check("spf", "fail", f"SPF for {domain} allows anyone ({spf[0].split()[-1]})",
                            "end it with -all or ~all"))
    else:
        checks.append(Check("spf", "ok", spf[0]))
    name = f"_dmarc.{domain}"
    records = txt(name, ask)
    dmarc = [r for r in records or [] if r.lower().replace(" ", "").startswith("v=dmarc1")]
    if records is None:
        checks.append(Check("dmarc", "warn", f"could not look up {name} (DNS did not answer)"))
    elif not dmarc:
        checks.append(Check("dmarc", "fail", f"no DMARC record at {name} (Gmail and Yahoo require one of bulk"
                            " senders)", f"publish: {name} TXT \"v=DMARC1; p=none; rua=mailto:dmarc@{domain}\","
                            " then move to p=quarantine once reports show your mail aligned"))
    else:
        policy = _tags(dmarc[0]).get("p", "")
        level = "ok" if policy in ("none", "quarantine", "reject") else "fail"
        checks.append(Check("dmarc", level, f"{name}: {dmarc[0]}", "" if level == "ok" else "set p=none or stricter"))
    return checks


def diagnose(settings: Settings, ask=None) -> list[Check]:
    """Every check, in order: settings, DKIM, the domain's SPF and DMARC."""
    return [*check_settings(settings), *check_dkim(settings, ask), *check_domain(settings, ask)]
