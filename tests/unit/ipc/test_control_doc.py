"""docs/control-plane.md is rendered from the control plane's table and cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from swserve.ipc import control, control_doc

ROOT = Path(__file__).resolve().parents[3]


def test_the_page_is_current() -> None:
    page = ROOT / "docs" / "control-plane.md"
    assert page.read_text() == control_doc.render(), (
        "docs/control-plane.md is stale: run "
        "python -m swserve.ipc.control_doc > docs/control-plane.md"
    )


def test_every_message_and_reason_is_on_the_page() -> None:
    page = control_doc.render()
    for cls in control.MESSAGES:
        assert f"| {int(cls.TYPE)} | `{cls.__name__}` |" in page
    for reason in control.Reason:
        assert f"| `{reason}` |" in page
