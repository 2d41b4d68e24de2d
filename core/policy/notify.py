"""Notifications: an outbox in the store, delivered to configured channels with retries.

A notice is *enqueued* inside the transaction of the change that raised it (a policy version waiting
for approval, an SLO budget alert), with its audit entry, so it is stored exactly when the change is.
*Delivery* (:func:`deliver_due`) runs later, outside every write transaction: an endpoint that is down
or slow never blocks or loses a write; the delivery stays pending and is retried with exponential
back-off (``backoff_s x 2^(attempt - 1)``, capped at ``max_backoff_s``) until ``max_attempts``, then it is
marked failed. Every attempt is logged (``notice_log``) and audited.

De-duplication: a notice whose ``dedup_key`` was enqueued less than ``dedup_window_s`` seconds ago is
not stored (nor sent) again; :func:`enqueue` returns None then.

Configuration: a TOML file named by ``$STUDIO_NOTIFY`` (default ``config/notify.toml``), or, for one
channel each without a file, ``$STUDIO_NOTIFY_WEBHOOK`` (generic JSON) and ``$STUDIO_NOTIFY_SLACK``
(Slack incoming webhook)::

    [notify]
    dedup_window_s = 3600     # the same notice is not sent twice within an hour
    max_attempts = 5
    backoff_s = 30            # retry after 30 s, 60 s, 120 s ... (at most max_backoff_s = 3600)
    timeout_s = 5             # per HTTP request

    [[notify.channel]]
    name = "oncall"
    type = "slack"            # or "webhook"
    url = "https://hooks.slack.com/services/..."
    kinds = ["pending_approval", "slo_budget"]   # optional; default every kind

    [[notify.channel]]
    name = "leads"
    type = "email"
    url = "smtp://mail.example.com:587"   # smtp:// (STARTTLS when starttls = true) or smtps:// (TLS)
    from = "studio@example.com"
    to = ["sre-leads@example.com"]
    starttls = true
    username = "studio"                   # optional; the password is read from the environment
    password_env = "STUDIO_SMTP_PASSWORD" # variable named here, never stored in the file

Payloads: ``webhook`` POSTs ``{"source": "threshold-studio", "id", "kind", "title", "body", "payload",
"created_at"}``; ``slack`` POSTs ``{"text": "*title*\\nbody"}`` (Slack's incoming-webhook format,
also read by Mattermost and Rocket.Chat). A 2xx answer is a delivery. ``email`` sends a plain-text
message (subject: the title; body: the body, then the payload as JSON) over SMTP; a message the server
accepts is a delivery (logged with the SMTP reply code 250), a refusal or a connection error is retried
like an HTTP failure.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from core.data.store import audit
from core.data.store import outbox as sql
from core.data.store.sql import Store
from core.errors import ValidationError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "notify.toml"
CHANNEL_TYPES = ("webhook", "slack", "email")
KINDS = ("pending_approval", "slo_budget", "drift", "rollback")
ACTOR = "notifier"

#: ``post(url, body_bytes, timeout_s) -> (http_status | None, error | None)``
Poster = Callable[[str, bytes, float], tuple[int | None, str | None]]


@dataclass(frozen=True)
class Channel:
    """A delivery channel; ``to``, ``sender``, ``starttls``, ``username`` and ``password_env`` are for
    ``email`` only (``url`` is then ``smtp://host[:port]`` or ``smtps://host[:port]``)."""

    name: str
    type: str
    url: str
    kinds: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    sender: str = ""
    starttls: bool = False
    username: str = ""
    password_env: str = ""

    def wants(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


@dataclass(frozen=True)
class NotifyConfig:
    """Channels and delivery settings (seconds)."""

    channels: tuple[Channel, ...] = ()
    dedup_window_s: float = 3600.0
    max_attempts: int = 5
    backoff_s: float = 30.0
    max_backoff_s: float = 3600.0
    timeout_s: float = 5.0
    errors: tuple[str, ...] = field(default=(), compare=False)

    def channels_for(self, kind: str) -> list[str]:
        return [c.name for c in self.channels if c.wants(kind)]

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)


def _num(d: dict[str, Any], key: str, default: float, path: str, *, minimum: float = 0.0) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
        raise ValidationError(f"{path}.{key} must be a number >= {minimum:g}, got {v!r}", path=f"{path}.{key}")
    return float(v)


def parse_config(cfg: dict[str, Any], *, source: str = "notify config") -> NotifyConfig:
    """A :class:`NotifyConfig` from the parsed TOML; errors name the file and field."""
    n = cfg.get("notify", {})
    if not isinstance(n, dict):
        raise ValidationError(f"{source}: [notify] must be a table", path="notify")
    chans, seen = [], set()
    for i, c in enumerate(n.get("channel", [])):
        p = f"notify.channel[{i}]"
        if not isinstance(c, dict):
            raise ValidationError(f"{source}: {p} must be a table", path=p)
        name, typ, url = c.get("name"), c.get("type", "webhook"), c.get("url")
        if not isinstance(name, str) or not name or name in seen:
            raise ValidationError(f"{source}: {p}.name must be a unique non-empty string", path=f"{p}.name")
        if typ not in CHANNEL_TYPES:
            raise ValidationError(f"{source}: {p}.type must be one of {list(CHANNEL_TYPES)}, got {typ!r}",
                                  path=f"{p}.type")
        email: dict[str, Any] = {}
        if typ == "email":
            email = _email_fields(c, url, p, source)
        elif not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValidationError(f"{source}: {p}.url must be an http(s) URL, got {url!r}", path=f"{p}.url")
        kinds = c.get("kinds", [])
        if not isinstance(kinds, list) or any(k not in KINDS for k in kinds):
            raise ValidationError(f"{source}: {p}.kinds must list some of {list(KINDS)}, got {kinds!r}",
                                  path=f"{p}.kinds")
        seen.add(name)
        chans.append(Channel(name, typ, url, tuple(kinds), **email))
    attempts = _num(n, "max_attempts", 5, "notify", minimum=1)
    return NotifyConfig(tuple(chans), _num(n, "dedup_window_s", 3600, "notify"), int(attempts),
                        _num(n, "backoff_s", 30, "notify"), _num(n, "max_backoff_s", 3600, "notify"),
                        _num(n, "timeout_s", 5, "notify", minimum=0.001))


def _email_fields(c: dict[str, Any], url: Any, p: str, source: str) -> dict[str, Any]:
    """The email settings of channel table ``c`` (at ``p``), checked; errors name the field."""
    if not isinstance(url, str) or not url.startswith(("smtp://", "smtps://")) or not urlsplit(url).hostname:
        raise ValidationError(f"{source}: {p}.url must be smtp://host[:port] or smtps://host[:port] for an email "
                              f"channel, got {url!r}", path=f"{p}.url")
    to, sender = c.get("to"), c.get("from")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        raise ValidationError(f"{source}: {p}.to must list one or more email addresses, got {to!r}", path=f"{p}.to")
    if not isinstance(sender, str) or "@" not in sender:
        raise ValidationError(f"{source}: {p}.from must be an email address, got {sender!r}", path=f"{p}.from")
    starttls = c.get("starttls", False)
    if not isinstance(starttls, bool):
        raise ValidationError(f"{source}: {p}.starttls must be true or false, got {starttls!r}", path=f"{p}.starttls")
    if "password" in c:
        raise ValidationError(f"{source}: {p}.password is not read from the file: name an environment variable "
                              "holding it in password_env", path=f"{p}.password")
    username, password_env = c.get("username", ""), c.get("password_env", "")
    for k, v in (("username", username), ("password_env", password_env)):
        if not isinstance(v, str):
            raise ValidationError(f"{source}: {p}.{k} must be a string, got {v!r}", path=f"{p}.{k}")
    return {"to": tuple(to), "sender": sender, "starttls": starttls, "username": username,
            "password_env": password_env}


def load_config(path: str | Path | None = None) -> NotifyConfig:
    """The configuration from ``path`` (default ``$STUDIO_NOTIFY``, else ``config/notify.toml``) plus the
    ``$STUDIO_NOTIFY_WEBHOOK`` / ``$STUDIO_NOTIFY_SLACK`` channels. A missing file is no channels."""
    p = Path(path or os.environ.get("STUDIO_NOTIFY") or DEFAULT_CONFIG)
    cfg: dict[str, Any] = {}
    if p.exists():
        try:
            cfg = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(f"{p}: not valid TOML ({exc})", path="notify") from None
    conf = parse_config(cfg, source=str(p))
    extra = [Channel(f"env-{t}", t, os.environ[v]) for t, v in (("webhook", "STUDIO_NOTIFY_WEBHOOK"),
                                                                ("slack", "STUDIO_NOTIFY_SLACK")) if os.environ.get(v)]
    if extra:
        conf = NotifyConfig(conf.channels + tuple(extra), conf.dedup_window_s, conf.max_attempts, conf.backoff_s,
                            conf.max_backoff_s, conf.timeout_s)
    return conf


def _config_or_error(config: NotifyConfig | None) -> NotifyConfig:
    """The given config, else the configured one; a broken config never blocks the write enqueuing a notice
    (the notice is stored without channels and the error is kept in the audit entry)."""
    if config is not None:
        return config
    try:
        return load_config()
    except ValidationError as exc:
        return NotifyConfig(errors=(str(exc),))


def _utc(now: Any) -> datetime:
    t = pd.Timestamp(now if now is not None else pd.Timestamp.now(tz="UTC"))
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).to_pydatetime()


def enqueue(store: Store, kind: str, dedup_key: str, title: str, body: str, payload: dict[str, Any] | None = None,
            *, config: NotifyConfig | None = None, now: Any = None, actor: str | None = None) -> int | None:
    """Store a notice for every channel that wants ``kind``, with its audit entry, inside the caller's
    transaction if there is one. Returns its id, or None when the same ``dedup_key`` was enqueued within
    the de-duplication window (nothing is written then)."""
    if kind not in KINDS:
        raise ValidationError(f"unknown notice kind {kind!r}; expected one of {list(KINDS)}", path="kind")
    conf = _config_or_error(config)
    t = _utc(now)
    with store.transaction():
        if conf.dedup_window_s > 0:
            dup = sql.recent_duplicate(store, dedup_key, t - timedelta(seconds=conf.dedup_window_s))
            if dup is not None:
                return None
        channels = conf.channels_for(kind)
        nid = sql.insert_notice(store, {"kind": kind, "dedup_key": dedup_key, "title": title, "body": body,
                                        "payload": audit.canonical_json(payload or {}), "created_at": t}, channels)
        detail: dict[str, Any] = {"kind": kind, "dedup_key": dedup_key, "channels": channels}
        if conf.errors:
            detail["config_errors"] = list(conf.errors)
        audit.record(store, actor or ACTOR, "notify.enqueue", object=f"notice:{nid}", detail=detail, now=t)
    return nid


def render(channel: Channel, notice: dict[str, Any]) -> dict[str, Any]:
    """The JSON body POSTed to ``channel`` for ``notice`` (a row of :func:`core.data.store.outbox.due`);
    for an email channel, ``{"subject", "text"}``."""
    if channel.type == "email":
        payload = json.loads(notice["payload"] or "{}")
        text = f"{notice['body']}\n"
        if payload:
            text += "\nDetails:\n" + json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        text += f"\n-- threshold studio, notice {int(notice['notice_id'])} ({notice['kind']})\n"
        return {"subject": f"[threshold studio] {notice['title']}", "text": text}
    if channel.type == "slack":
        return {"text": f"*{notice['title']}*\n{notice['body']}"}
    created = pd.Timestamp(notice["created_at"])
    return {"source": "threshold-studio", "id": int(notice["notice_id"]), "kind": notice["kind"],
            "title": notice["title"], "body": notice["body"], "payload": json.loads(notice["payload"] or "{}"),
            "created_at": created.isoformat()}


def http_post(url: str, body: bytes, timeout_s: float) -> tuple[int | None, str | None]:
    """POST JSON; ``(status, None)`` on a 2xx answer, else ``(status or None, error text)``. Never raises."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "threshold-studio"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (http(s) checked in config)
            return int(resp.status), None
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code} {exc.reason}"
    except Exception as exc:  # connection refused, timeout, DNS: the delivery is retried later
        return None, f"{type(exc).__name__}: {exc}"


def smtp_send(channel: Channel, message: dict[str, Any], timeout_s: float) -> tuple[int | None, str | None]:
    """Send ``message`` (``{"subject", "text"}``) by email on ``channel``; ``(250, None)`` when the server
    accepted it for every recipient, else ``(reply code or None, error text)``. Never raises."""
    u = urlsplit(channel.url)
    tls = u.scheme == "smtps"
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = message["subject"], channel.sender, ", ".join(channel.to)
    msg.set_content(message["text"])
    try:
        cls = smtplib.SMTP_SSL if tls else smtplib.SMTP
        kw: dict[str, Any] = {"context": ssl.create_default_context()} if tls else {}
        with cls(u.hostname, u.port or (465 if tls else 25), timeout=timeout_s, **kw) as smtp:
            if channel.starttls and not tls:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username:
                smtp.login(channel.username, os.environ.get(channel.password_env, "") if channel.password_env else "")
            refused = smtp.send_message(msg)
        if refused:
            return 250, "refused by the server for " + ", ".join(sorted(refused))
        return 250, None
    except smtplib.SMTPResponseException as exc:
        return int(exc.smtp_code), f"SMTP {exc.smtp_code} {exc.smtp_error!r}"
    except Exception as exc:  # connection refused, timeout, TLS, recipients refused: retried later
        return None, f"{type(exc).__name__}: {exc}"


def backoff(conf: NotifyConfig, attempt: int) -> float:
    """Seconds before the retry that follows failed attempt number ``attempt`` (1-based)."""
    return min(conf.max_backoff_s, conf.backoff_s * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0


#: ``mail(channel, {"subject", "text"}, timeout_s) -> (smtp_code | None, error | None)``
Mailer = Callable[[Channel, dict[str, Any], float], tuple[int | None, str | None]]


def deliver_due(store: Store, config: NotifyConfig | None = None, *, now: Any = None,
                post: Poster | None = None, mail: Mailer | None = None, limit: int = 100) -> DeliveryResult:
    """Attempt every pending delivery due by ``now`` once. The HTTP request is made outside any
    transaction; its outcome (sent, retry at ``now + backoff``, or failed after ``max_attempts``) is then
    written with its log row and audit entry in one transaction. A channel no longer configured is
    marked failed."""
    conf = config if config is not None else load_config()
    send = post or http_post
    t = _utc(now)
    sent = retrying = failed = skipped = 0
    for row in sql.due(store, t, limit):
        ch = conf.channel(row["channel"])
        attempt = int(row["attempts"]) + 1
        if ch is None:
            status, err, ok = None, f"channel {row['channel']!r} is no longer configured", False
        elif ch.type == "email":
            status, err = (mail or smtp_send)(ch, render(ch, row), conf.timeout_s)
            ok = err is None and status == 250
            if not ok and err is None:
                err = f"SMTP {status}"
        else:
            body = json.dumps(render(ch, row), ensure_ascii=False).encode("utf-8")
            status, err = send(ch.url, body, conf.timeout_s)
            ok = err is None and status is not None and 200 <= status < 300
            if not ok and err is None:
                err = f"HTTP {status}"
        if ok:
            state, nxt = "sent", None
        elif ch is None or attempt >= conf.max_attempts:
            state, nxt = "failed", None
        else:
            state, nxt = "pending", t + timedelta(seconds=backoff(conf, attempt))
        with store.transaction():
            if not sql.record_attempt(store, row["notice_id"], row["channel"], attempt=attempt, now=t, ok=ok,
                                      http_status=status, error=err, status=state, next_attempt_at=nxt):
                skipped += 1
                continue
            audit.record(store, ACTOR, "notify.deliver", object=f"notice:{row['notice_id']}",
                         detail={"channel": row["channel"], "attempt": attempt, "ok": ok, "status": state,
                                 "http_status": status, "error": err,
                                 "next_attempt_at": nxt}, now=t)
        sent += state == "sent"
        retrying += state == "pending"
        failed += state == "failed"
    return DeliveryResult(sent, retrying, failed, skipped)


def notices(store: Store, limit: int = 200) -> pd.DataFrame:
    """Stored notices, newest first, with each channel's delivery state."""
    return sql.notices(store, limit)


def delivery_log(store: Store, limit: int = 500) -> pd.DataFrame:
    """Every delivery attempt, newest first."""
    return sql.delivery_log(store, limit)
