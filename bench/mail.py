"""How fast the SMTP listener takes mail in, and how soon each message is a task.

Hand-run, not a test: `.venv/bin/python bench/mail.py [--messages 300] [--postgres URL]`.

The real `kennel serve` runs with its listener on a free port. For 1 and 8 concurrent senders
(each an `smtplib` session sending one message after another), it prints the messages accepted
per second (the 250 after DATA) and, for each message, the time from that 250 to its task's
`createdAt`: p50 and p99. Every message must become exactly one task (counted by subject).
Aim on SQLite: at least 100 messages a second accepted, nothing lost.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
from _machine import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
PYTHON = ROOT / ".venv" / "bin" / "python"


def start(tmp: Path, database_url: str) -> tuple[subprocess.Popen[bytes], str, str, int]:
    from kennel.auth.keys import generate_key

    port, key = free_port(), generate_key()
    env = {
        **os.environ,
        "KENNEL_DATABASE_URL": database_url,
        "KENNEL_DATA_DIR": str(tmp / "data"),
        "KENNEL_BOOTSTRAP_API_KEY": key,
        "KENNEL_LOG_LEVEL": "WARNING",
        "KENNEL_SMTP_PORT": "0",
    }
    stdout = tmp / "server.stdout"
    process = subprocess.Popen(
        [str(PYTHON), "-m", "kennel", "serve", "--port", str(port)],
        env=env,
        stdout=stdout.open("wb"),
        stderr=(tmp / "server.log").open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"SMTP listener +[\d.]+:(\d+)", stdout.read_text())
        if found:
            return process, f"http://127.0.0.1:{port}", key, int(found.group(1))
        time.sleep(0.2)
    raise SystemExit((tmp / "server.log").read_text()[-3000:])


def message(to: str, subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "admin@example.com", to, subject
    mail.set_content("Count the dogs, please.")
    return mail.as_bytes(policy=policy.SMTP)


def level(
    smtp_port: int, to: str, senders: int, per_sender: int, label: str
) -> tuple[float, dict[str, float]]:
    accepted: dict[str, float] = {}
    lock = threading.Lock()

    def sender(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            for i in range(per_sender):
                subject = f"{label}-{n}-{i}"
                client.sendmail("admin@example.com", [to], message(to, subject))
                with lock:
                    accepted[subject] = time.time()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(accepted) / (time.monotonic() - began), accepted


def tasks(http: httpx.Client, worker_id: str) -> list[dict]:
    found, page = [], 1
    while True:
        body = http.get("/api/tasks", params={"workerId": worker_id, "page": page}).json()
        found += body["tasks"]
        if page >= body["pageCount"]:
            return found
        page += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="messages at each level")
    parser.add_argument("--postgres", metavar="URL", help="a scratch database on this server")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kennel-bench-mail-") as folder:
        tmp = Path(folder)
        name = f"kennel_bench_mail_{os.getpid()}"
        if opts.postgres:
            import asyncio

            from _machine import scratch_postgres
            from sqlalchemy.engine import make_url

            asyncio.run(scratch_postgres(opts.postgres, name, create=True))
            url = make_url(opts.postgres).set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{tmp / 'kennel.sqlite3'}"
        process, base, key, smtp_port = start(tmp, url)
        try:
            print(f"Kennel mail bench: {'PostgreSQL' if opts.postgres else 'SQLite'}")
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as http:
                for senders in (1, 8):
                    worker = http.post("/api/workers", json={"title": f"Inbox {senders}"}).json()
                    per_sender = max(1, opts.messages // senders)
                    rate, accepted = level(
                        smtp_port, worker["email"], senders, per_sender, f"s{senders}"
                    )
                    deadline = time.monotonic() + 300
                    while len(found := tasks(http, worker["id"])) < len(accepted):
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.5)
                    time.sleep(1)
                    found = tasks(http, worker["id"])  # paged again, now that none is added
                    per_subject = collections.Counter(t["title"] for t in found)
                    lost = sum(1 for s in accepted if per_subject[s] == 0)
                    doubled = sum(1 for s in accepted if per_subject[s] > 1)
                    waits = sorted(
                        (datetime.fromisoformat(t["createdAt"].replace("Z", "+00:00")).timestamp()
                         - accepted[t["title"]]) * 1000
                        for t in found
                        if t["title"] in accepted
                    )  # fmt: skip
                    p50 = statistics.median(waits) if waits else float("nan")
                    p99 = (
                        waits[min(len(waits) - 1, int(len(waits) * 0.99))]
                        if waits
                        else float("nan")
                    )
                    verdict = "PASS" if rate >= 100 and not lost and not doubled else "BELOW"
                    print(
                        f"  {senders} sender(s): {len(accepted)} messages, {rate:6.1f}/s accepted;"
                        f" 250 -> task: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms; lost {lost},"
                        f" twice {doubled}"
                        f"   (aim >= 100/s, none lost: {verdict})"
                    )
        finally:
            process.terminate()
            process.wait(timeout=30)
            if opts.postgres:
                asyncio.run(scratch_postgres(opts.postgres, name, create=False))


if __name__ == "__main__":
    main()
