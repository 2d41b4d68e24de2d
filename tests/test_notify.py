"""Notification outbox: enqueue with the change, de-duplication, delivery to a local HTTP server,
retries with back-off, failure after the last attempt, and writes that never wait for an endpoint."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from core.alerting.rules import Rule
from core.data.store import audit, outbox
from core.policy import notify
from core.policy import versions as pol
from core.policy.identity import User

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


class _Server:
    """A webhook endpoint on 127.0.0.1 answering each POST with the next status of ``codes`` (then 200)."""

    def __init__(self, codes=()):
        self.codes, self.received = list(codes), []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                outer.received.append((self.path, json.loads(self.rfile.read(n))))
                code = outer.codes.pop(0) if outer.codes else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def s(store):
    audit.install(store)
    return store


def _conf(*channels, **kw):
    return notify.NotifyConfig(channels=tuple(channels), **{"timeout_s": 2.0, **kw})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_and_slack_payloads_are_delivered_once(s, server):
    conf = _conf(notify.Channel("hook", "webhook", server.url("/hook")),
                 notify.Channel("chat", "slack", server.url("/slack"), kinds=("slo_budget",)))
    a = notify.enqueue(s, "slo_budget", "slo:api:1h", "SLO api burning", "14.4x over 1h", {"burn": 15.0},
                       config=conf, now=T0)
    b = notify.enqueue(s, "pending_approval", "pa:1", "v2 waits", "needs approval", config=conf, now=T0)
    res = notify.deliver_due(s, conf, now=T0)
    assert (res.sent, res.retrying, res.failed) == (3, 0, 0)
    got = sorted(server.received, key=lambda x: (x[0], json.dumps(x[1])))
    hooks = [p for path, p in got if path == "/hook"]
    assert sorted(h["id"] for h in hooks) == [a, b]
    slo = next(h for h in hooks if h["id"] == a)
    assert slo["kind"] == "slo_budget" and slo["payload"] == {"burn": 15.0} and slo["source"] == "threshold-studio"
    assert [p for path, p in got if path == "/slack"] == [{"text": "*SLO api burning*\n14.4x over 1h"}]
    assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(hours=1)).sent == 0       # nothing sent twice
    log = notify.delivery_log(s)
    assert len(log) == 3 and log["ok"].all()
    assert len(audit.list_audit(s, action="notify.enqueue")) == 2
    assert len(audit.list_audit(s, action="notify.deliver")) == 3
    assert audit.verify_audit(s)[0]


def test_same_notice_within_the_window_is_not_stored_or_sent_again(s, server):
    conf = _conf(notify.Channel("hook", "webhook", server.url()), dedup_window_s=3600)
    first = notify.enqueue(s, "slo_budget", "slo:api", "t", "b", config=conf, now=T0)
    assert notify.enqueue(s, "slo_budget", "slo:api", "t", "b", config=conf, now=T0 + pd.Timedelta(minutes=59)) is None
    other = notify.enqueue(s, "slo_budget", "slo:db", "t", "b", config=conf, now=T0 + pd.Timedelta(minutes=59))
    later = notify.enqueue(s, "slo_budget", "slo:api", "t", "b", config=conf, now=T0 + pd.Timedelta(minutes=61))
    assert len({first, other, later}) == 3 and None not in (first, other, later)
    assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(hours=2)).sent == 3
    assert len(server.received) == 3


def test_retries_back_off_then_deliver(s):
    srv = _Server(codes=[500, 503])
    try:
        conf = _conf(notify.Channel("hook", "webhook", srv.url()), backoff_s=30, max_attempts=5)
        nid = notify.enqueue(s, "slo_budget", "k", "t", "b", config=conf, now=T0)
        assert notify.deliver_due(s, conf, now=T0).retrying == 1
        d = outbox.deliveries(s, nid)[0]
        assert d["status"] == "pending" and d["attempts"] == 1
        assert pd.Timestamp(d["next_attempt_at"]) == T0 + pd.Timedelta(seconds=30)
        assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(seconds=29)).retrying == 0   # not due yet
        assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(seconds=30)).retrying == 1  # 503; next +60 s
        assert pd.Timestamp(outbox.deliveries(s, nid)[0]["next_attempt_at"]) == T0 + pd.Timedelta(seconds=90)
        assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(seconds=90)).sent == 1
        log = notify.delivery_log(s).sort_values("attempt")
        assert log["http_status"].tolist() == [500, 503, 200] and log["ok"].tolist() == [False, False, True]
        assert len(srv.received) == 3
    finally:
        srv.close()


def test_back_off_doubles_and_is_capped():
    conf = _conf(backoff_s=30, max_backoff_s=100)
    assert [notify.backoff(conf, a) for a in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_unreachable_endpoint_never_blocks_a_write_and_fails_after_the_last_attempt(s):
    conf = _conf(notify.Channel("down", "webhook", f"http://127.0.0.1:{_free_port()}/x"), max_attempts=2,
                 backoff_s=10)
    nid = notify.enqueue(s, "slo_budget", "k", "t", "b", config=conf, now=T0)
    assert nid is not None and len(notify.notices(s)) == 1                 # stored although nobody listens
    assert notify.deliver_due(s, conf, now=T0).retrying == 1
    assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(seconds=10)).failed == 1
    log = notify.delivery_log(s)
    assert len(log) == 2 and not log["ok"].any() and log["error"].str.contains("Connection refused").all()
    assert notify.notices(s)["channels"].iloc[0] == "down: failed"


def test_broken_config_file_still_stores_the_notice(s, tmp_path, monkeypatch):
    bad = tmp_path / "notify.toml"
    bad.write_text('[[notify.channel]]\nname = "x"\ntype = "pager"\nurl = "http://h"\n')
    monkeypatch.setenv("STUDIO_NOTIFY", str(bad))
    with pytest.raises(notify.ValidationError, match=r"notify.channel\[0\].type"):
        notify.load_config()
    nid = notify.enqueue(s, "slo_budget", "k", "t", "b", now=T0)
    assert nid is not None
    e = audit.list_audit(s, action="notify.enqueue").iloc[0]
    detail = json.loads(e["detail"]) if isinstance(e["detail"], str) else e["detail"]
    assert detail["channels"] == [] and "pager" in detail["config_errors"][0]


def test_config_file_and_env_channels(tmp_path, monkeypatch):
    f = tmp_path / "n.toml"
    f.write_text('[notify]\ndedup_window_s = 600\nmax_attempts = 3\n[[notify.channel]]\nname = "ops"\n'
                 'type = "slack"\nurl = "https://hooks.example/T1"\nkinds = ["pending_approval"]\n')
    monkeypatch.setenv("STUDIO_NOTIFY", str(f))
    monkeypatch.setenv("STUDIO_NOTIFY_WEBHOOK", "http://127.0.0.1:9/h")
    c = notify.load_config()
    assert (c.dedup_window_s, c.max_attempts) == (600.0, 3)
    assert [(ch.name, ch.type) for ch in c.channels] == [("ops", "slack"), ("env-webhook", "webhook")]
    assert c.channels_for("slo_budget") == ["env-webhook"]
    assert c.channels_for("pending_approval") == ["ops", "env-webhook"]


def test_a_change_waiting_for_approval_enqueues_a_notice(s, server, monkeypatch):
    f = server.url()
    monkeypatch.setenv("STUDIO_NOTIFY", "/nonexistent/notify.toml")
    monkeypatch.setenv("STUDIO_NOTIFY_WEBHOOK", f)
    ed = User("ed", "ed@example.com", frozenset({"viewer", "editor"}), os_account="ed-os")
    pol.apply(s, "default", [Rule(name="A", series="m", warning=80.0)], base_version=0, user=ed, reason="init",
              now=T0)
    assert notify.notices(s).empty                                   # bootstrap: nothing waits
    v2 = pol.apply(s, "default", [Rule(name="A", series="m", warning=200.0)], base_version=1, user=ed,
                   reason="quieter", now=T0 + pd.Timedelta(hours=1))
    assert v2.status == "pending_approval"
    n = notify.notices(s)
    assert n["kind"].tolist() == ["pending_approval"] and n["dedup_key"].iloc[0] == "pending_approval:default@v2"
    assert notify.deliver_due(s, now=T0 + pd.Timedelta(hours=1)).sent == 1
    assert server.received[0][1]["payload"]["version"] == 2


def test_slo_budget_alerts_enqueue_notices_once_per_window(s, server, tmp_path):
    from core.slo import SLO, burn_rules, slos_to_meta
    from core.slo.watch import check_budget_alerts

    idx = pd.date_range(T0, periods=2 * 1440, freq="min")
    req = pd.Series(100.0, index=idx)
    err = pd.Series(0.0, index=idx)
    err.iloc[-30:] = 50.0                           # the last 30 minutes: half the requests fail
    rows = [f"{t.isoformat()},{k},{v}" for k, ser in (("errors", err), ("requests", req)) for t, v in ser.items()]
    f = tmp_path / "slo.csv"
    f.write_text("timestamp,series,value\n" + "\n".join(rows) + "\n")
    s.ingest(f, actor="ed")
    slo = SLO("api", "errors", 0.999, sli="ratio", total="requests", min_events=1000)
    ed = User("ed", "ed@example.com", frozenset({"viewer", "editor"}), os_account="ed-os")
    pol.apply(s, "default", burn_rules(slo), base_version=0, user=ed, reason="api SLO", now=T0,
              meta=slos_to_meta({}, [slo]))
    conf = _conf(notify.Channel("hook", "webhook", server.url()))
    now = idx[-1] + pd.Timedelta(minutes=1)
    alerts = check_budget_alerts(s, config=conf, now=now)
    # last hour: 1500 errors of 6000 requests = 25 % = 250x; 6 h: 1500 / 36000 = 41.7x; 3 d (2 d stored):
    # 1500 / 288000 = 5.2x; every pair's short window is above its factor too
    assert [(a["windows"], round(a["burn_rate"], 1)) for a in alerts] == [
        ("1h/5m", 250.0), ("6h/30m", 41.7), ("3d/6h", 5.2)]
    assert all(a["notice_id"] is not None for a in alerts)
    again = check_budget_alerts(s, config=conf, now=now + pd.Timedelta(minutes=10))
    assert [a["notice_id"] for a in again] == [None, None, None]           # de-duplicated within the hour
    assert notify.deliver_due(s, conf, now=now).sent == 3
    assert {p["kind"] for _, p in server.received} == {"slo_budget"}
    assert "250.0x" in next(p["title"] for _, p in server.received if p["payload"]["windows"] == "1h/5m")


def test_cli_deliver_and_log(tmp_path, server, monkeypatch, capsys):
    from core.__main__ import main
    from core.data.store import Store

    db = tmp_path / "cli.duckdb"
    monkeypatch.setenv("STUDIO_NOTIFY", str(tmp_path / "none.toml"))
    monkeypatch.setenv("STUDIO_NOTIFY_SLACK", server.url("/slack"))
    with Store(db) as st_:
        audit.install(st_)
        notify.enqueue(st_, "drift", "d1", "drift on api", "KS p < 0.001")
    assert main(["notify", "--db", str(db), "deliver"]) == 0
    assert "sent 1, retrying 0, failed 0" in capsys.readouterr().out
    assert server.received == [("/slack", {"text": "*drift on api*\nKS p < 0.001"})]
    assert main(["notify", "--db", str(db), "log"]) == 0
    assert "drift on api" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- email
class _Smtp:
    """A minimal SMTP server on 127.0.0.1 (EHLO, MAIL, RCPT, DATA, QUIT) keeping each message it accepts;
    ``refuse`` answers MAIL FROM with 451 that many times first (a temporary failure)."""

    def __init__(self, refuse: int = 0):
        import socketserver

        self.messages, self.refuse = [], refuse
        outer = self

        class H(socketserver.StreamRequestHandler):
            def handle(self):
                def say(line):
                    self.wfile.write((line + "\r\n").encode())

                say("220 test ESMTP")
                rcpt, sender = [], None
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    cmd = raw.decode().strip()
                    up = cmd.upper()
                    if up.startswith(("EHLO", "HELO")):
                        say("250 test")
                    elif up.startswith("MAIL FROM"):
                        if outer.refuse:
                            outer.refuse -= 1
                            say("451 try again later")
                            continue
                        sender = cmd.split(":", 1)[1].strip("<> ")
                        say("250 ok")
                    elif up.startswith("RCPT TO"):
                        rcpt.append(cmd.split(":", 1)[1].strip("<> "))
                        say("250 ok")
                    elif up == "DATA":
                        say("354 end with .")
                        lines = []
                        while (line := self.rfile.readline().decode()) not in (".\r\n", ".\n", ""):
                            lines.append(line)
                        outer.messages.append((sender, list(rcpt), "".join(lines)))
                        say("250 queued")
                    elif up == "RSET":
                        rcpt, sender = [], None
                        say("250 ok")
                    elif up == "QUIT":
                        say("221 bye")
                        return
                    else:
                        say("502 not implemented")

        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.srv.server_address[1]}"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(timeout=5)


def test_email_channel_config_is_checked_and_names_the_field():
    ok = notify.parse_config({"notify": {"channel": [{"name": "mail", "type": "email", "url": "smtp://mx:2525",
                                                      "from": "studio@example.com", "to": "oncall@example.com"}]}})
    ch = ok.channels[0]
    assert (ch.type, ch.to, ch.sender, ch.starttls) == ("email", ("oncall@example.com",), "studio@example.com", False)
    bad = [({"url": "http://mx"}, "url"), ({"to": []}, "to"), ({"from": "nobody"}, "from"),
           ({"starttls": "yes"}, "starttls"), ({"password": "hunter2"}, "password")]
    for change, field in bad:
        c = {"name": "mail", "type": "email", "url": "smtp://mx", "from": "s@x.org", "to": ["o@x.org"], **change}
        with pytest.raises(Exception) as exc:
            notify.parse_config({"notify": {"channel": [c]}})
        assert f"notify.channel[0].{field}" in str(exc.value)


def test_email_delivered_to_a_local_smtp_server_with_retry(s):
    smtp = _Smtp(refuse=1)
    try:
        conf = _conf(notify.Channel("mail", "email", smtp.url, to=("oncall@example.com", "lead@example.com"),
                                    sender="studio@example.com"), backoff_s=30)
        nid = notify.enqueue(s, "rollback", "rb:1", "v2 rolled back", "alert storm: 67/week against 6.7",
                             {"trigger": "alert_storm"}, config=conf, now=T0)
        first = notify.deliver_due(s, conf, now=T0)
        assert (first.sent, first.retrying) == (0, 1) and smtp.messages == []     # 451: retried later
        assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(seconds=29)).sent == 0   # not due yet
        assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(seconds=30)).sent == 1
        assert notify.deliver_due(s, conf, now=T0 + pd.Timedelta(hours=1)).sent == 0    # never twice
        (sender, rcpt, text), = smtp.messages
        assert sender == "studio@example.com" and rcpt == ["oncall@example.com", "lead@example.com"]
        assert "Subject: [threshold studio] v2 rolled back" in text
        assert "alert storm: 67/week against 6.7" in text and '"trigger": "alert_storm"' in text
        assert f"notice {nid} (rollback)" in text
        log = notify.delivery_log(s)
        assert sorted(log["ok"].tolist()) == [False, True]
        assert "451" in " ".join(str(e) for e in log["error"].dropna())
    finally:
        smtp.close()


def test_unreachable_smtp_server_never_blocks_and_is_retried(s):
    conf = _conf(notify.Channel("mail", "email", f"smtp://127.0.0.1:{_free_port()}", to=("o@example.com",),
                                sender="s@example.com"), timeout_s=1.0)
    notify.enqueue(s, "drift", "d:1", "drift", "b", config=conf, now=T0)
    res = notify.deliver_due(s, conf, now=T0)
    assert (res.sent, res.retrying) == (0, 1)
    assert "ConnectionRefusedError" in notify.delivery_log(s)["error"].iloc[0]
