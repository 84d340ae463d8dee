"""Take the pictures of the HTML report in docs/: one per kind of plot, from the samples.

    python docs/screenshots.py          # writes docs/report-*.png (needs chromium on PATH)

Each picture is one figure of `gradlint SAMPLES --format html`, cut out by headless Chromium
(docs/browser.py) at 1000 CSS pixels wide, so the pictures show what a reader's browser shows.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser  # noqa: E402  (docs/browser.py, beside this file)

REPOSITORY = Path(__file__).resolve().parents[1]
# (picture, sample, figure): the sample whose figure of that kind shows the most.
PICTURES = (
    ("report-layers.png", "samples/deep_mlp_normal_init.py", "layers"),
    ("report-residual.png", "samples/resnet_no_norm.py", "residual"),
    ("report-activations.png", "samples/deep_tanh_mlp_large_gain.py", "activations"),
    ("report-lookahead.png", "samples/sgd_lr_too_high.py", "lookahead"),
    ("report-curvature.png", "samples/sgd_lr_too_high.py", "curvature"),
)


def main() -> None:
    executable = browser.find()
    if executable is None:
        sys.exit("chromium is not on PATH (Debian: apt-get install chromium)")
    samples = list(dict.fromkeys(sample for _, sample, _ in PICTURES))
    with tempfile.TemporaryDirectory() as folder:
        page_path = Path(folder) / "report.html"
        subprocess.run([sys.executable, "-m", "gradlint", *samples, "--format", "html", "-o", str(page_path),
                        "--exit-zero"], cwd=REPOSITORY, check=True)
        with browser.Page(executable) as page:
            page.open(page_path)
            for picture, sample, kind in PICTURES:
                section = f"model-{samples.index(sample) + 1}"
                size = page.screenshot(REPOSITORY / "docs" / picture, f"#{section}-{kind}")
                print(f"docs/{picture}: {sample}, {kind} ({size[0]}x{size[1]})")
            assert page.errors() == [], page.errors()


if __name__ == "__main__":
    main()
