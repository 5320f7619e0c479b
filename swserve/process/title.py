"""Process titles (``swserve: master``, ``swserve: worker 1``) as ``ps`` shows them."""

from __future__ import annotations


def set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - a dependency; titles are cosmetic
        return
    setproctitle.setproctitle(title)
