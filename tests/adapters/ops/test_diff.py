"""``python app.py diff OLD NEW``: a reviewer sees what a config change changes, for whom: routes,
a week of work hours side by side, texts, and which sample visitors are treated differently."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.processes import run_app

OLD = """\
routes:
  - id: billing
    name: Billing
    channel: "19:billing@thread.tacv2"
    trigger: 'context.domain == "FINANCE_DOMAIN"'
    hours:
      timezone: Europe/Berlin
      weekly:
        mon: ["09:00-17:00"]
        fri: ["09:00-17:00"]
    out_of_hours: message
  - id: legacy
    channel: "19:legacy@thread.tacv2"
    trigger: 'context.domain == "OLD"'
  - id: support
    name: Customer support
    channel: "19:support@thread.tacv2"
"""

NEW = """\
routes:
  - id: billing
    name: Billing
    channel: "19:billing@thread.tacv2"
    trigger: 'context.domain == "FINANCE"'
    hours:
      timezone: Europe/Berlin
      weekly:
        mon: ["09:00-17:00"]
        fri: ["09:00-12:30", "14:00-16:00"]
        sat: ["10:00-14:00"]
    out_of_hours: message
  - id: sales
    name: Sales
    channel: "19:sales@thread.tacv2"
    trigger: 'context.domain == "SALES"'
  - id: support
    name: Customer support
    channel: "19:support@thread.tacv2"
texts:
  queued: "Hang on, {route} is coming."
"""

VISITORS = """\
{"name": "Jane (finance)", "context": {"domain": "FINANCE_DOMAIN"}, "messages": ["can I talk to a person?"]}
{"name": "Omar (sales)", "category": "sales", "messages": ["40 seats?"], "at": "2026-12-12T11:00:00+01:00"}

{"name": "Sam (asks for nothing)", "messages": ["what are your opening hours?"]}
"""


def diff(tmp_path: Path, *extra: str, old: str = OLD) -> subprocess.CompletedProcess[str]:
    (tmp_path / "old.yaml").write_text(old)
    (tmp_path / "new.yaml").write_text(NEW)
    (tmp_path / "visitors.jsonl").write_text(VISITORS)
    old_path, new_path = str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")
    return run_app("diff", old_path, new_path, "--at", "2026-12-07T08:00:00+01:00", *extra)


def test_routes_hours_texts_and_the_visitors_treated_differently(tmp_path: Path) -> None:
    done = diff(tmp_path, "--visitors", str(tmp_path / "visitors.jsonl"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "+ route sales (Sales) in 19:sales@thread.tacv2" in out
    assert "- route legacy: removed (its open handoffs keep going; no new ones)" in out
    assert '~ route billing: trigger: "context.domain == \\"FINANCE_DOMAIN\\""' in out
    assert '~ route billing: hours.weekly.sat: (none) -> ["10:00-14:00"]' in out
    week = out.split("## Work hours, 7 days from 2026-12-07\n")[1].split("##")[0]
    assert "  Mon 2026-12-07 09:00-17:00   09:00-17:00" in week
    assert " *Fri 2026-12-11 09:00-17:00   09:00-12:30, 14:00-16:00" in week
    assert " *Sat 2026-12-12 closed        10:00-14:00" in week
    assert "  Sun 2026-12-13 closed" in week
    assert "~ texts.queued:\n    before: \"I'm connecting you" in out
    assert '    after:  "Hang on, {route} is coming."' in out
    samples = out.split("## Sample visitors (3) treated differently\n")[1]
    assert (
        "Jane (finance) (line 1, 2026-12-07T08:00:00+01:00):\n  route: billing -> support"
        in samples
    )
    assert "Omar (sales) (line 2, 2026-12-12T11:00:00+01:00):\n  route: support -> sales" in samples
    assert "Sam" not in samples  # the bot answers him before and after


def test_the_same_config_changes_nothing(tmp_path: Path) -> None:
    done = diff(tmp_path, old=NEW)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("no change") == 3


def test_bad_input_is_named_and_exits_2(tmp_path: Path) -> None:
    bad = diff(tmp_path, old=OLD.replace("Europe/Berlin", "Europe/Nowhere"))
    assert bad.returncode == 2
    assert "old.yaml:7: routes[0].hours.timezone: unknown IANA time zone" in bad.stderr
    (tmp_path / "broken.jsonl").write_text('{"name": "ok"}\n{not json}\n')
    broken = diff(tmp_path, "--visitors", str(tmp_path / "broken.jsonl"))
    assert broken.returncode == 2
    assert f"diff: {tmp_path / 'broken.jsonl'}:2: not JSON" in broken.stderr
