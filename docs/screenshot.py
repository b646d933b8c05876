"""Regenerate docs/report-html.png: the HTML report of the seed's buggy network, as headless
Chromium renders it. Run from the repository root: ``python docs/screenshot.py`` (needs
matplotlib, Pillow and Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import gradprobe as gp
from gradprobe.examples import deeplearning_ai as dla

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 1000, 880


def main() -> int:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if browser is None:
        print("no Chromium found", file=sys.stderr)
        return 1
    X, Y, parameters = dla.gradient_check_n_test_case()
    report = gp.check(*dla.loss_and_grad(X, Y, dla.backward_propagation_n), parameters)
    with tempfile.TemporaryDirectory() as tmp:
        page, shot = Path(tmp) / "report.html", Path(tmp) / "shot.png"
        report.to_html(page)
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={shot}",
             f"--window-size={WIDTH},{HEIGHT}", page.as_uri()],
            check=True, capture_output=True,
        )  # fmt: skip
        from PIL import Image

        # A 256-colour palette keeps the committed PNG small without visible loss.
        with Image.open(shot) as image:
            image.convert("RGB").quantize(colors=256).save(HERE / "report-html.png", optimize=True)
    print(f"wrote {HERE / 'report-html.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
