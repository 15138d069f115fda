"""The HTML report in headless Chromium (Debian's ``chromium``): four charts embedded and drawn
(their colours in a screenshot), nothing fetched from outside; an empty history renders too."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.reporting.compute import build_report
from flows.reports import render
from tests.reports import synthetic

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# colours each chart draws: success bars, capacity bar, over-threshold bar, error bars
CHART_COLOURS = {"success bars": (46, 125, 50), "capacity bar": (21, 101, 192),
                 "over threshold": (198, 40, 40), "errors": (247, 182, 128)}

needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="chromium is not installed")


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install chromium)")
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(html: Path, png: Path, size: str = "1000,1300") -> Path:
    chromium(f"--window-size={size}", f"--screenshot={png}", html.as_uri())
    return png


def weekly_html(tmp_path: Path, days: int = 60) -> Path:
    runs, snaps = synthetic.history(NOW, days=days, fail_every=40)
    report = build_report("weekly", NOW, runs, snaps, synthetic.storage(),
                          synthetic.drills(NOW), site="example", timezone="America/New_York",
                          sources=list(synthetic.SOURCES))
    _markdown, page = render(report)
    path = tmp_path / "weekly.html"
    path.write_text(page)
    return path


def colour_share(png: Path, rgb: tuple[int, int, int], tolerance: int = 12) -> float:
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    close = (np.abs(pixels - np.array(rgb, dtype=np.int16)) <= tolerance).all(axis=-1)
    return float(close.mean())


@needs_chromium
def test_charts_are_embedded_and_drawn(tmp_path):
    html = weekly_html(tmp_path)
    text = html.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    dom = chromium("--dump-dom", html.as_uri()).stdout
    assert dom.count("<img class=\"chart\"") == 4
    assert dom.count("src=\"data:image/svg+xml;base64,") == 4
    png = screenshot(html, tmp_path / "weekly.png")
    for what, rgb in CHART_COLOURS.items():
        assert colour_share(png, rgb) > 0.0005, f"{what} not drawn"
    blank = colour_share(png, (255, 255, 255), tolerance=0)
    assert blank < 0.9


@needs_chromium
def test_empty_history_renders_and_says_so(tmp_path):
    report = build_report("daily", NOW, [], [], [], [])
    _markdown, page = render(report)
    html = tmp_path / "empty.html"
    html.write_text(page)
    dom = chromium("--dump-dom", html.as_uri()).stdout
    assert "no backup runs in the history" in dom
    assert dom.count("<img class=\"chart\"") == 4
    png = screenshot(html, tmp_path / "empty.png")
    assert colour_share(png, (255, 255, 255), tolerance=0) < 0.99
