"""Copy the plots of the demo's report.html into docs/ for the README (they are PNG data URIs there)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

HERE = Path(__file__).parent
DOCS = HERE.parents[1] / "docs"
NAMES = {"learning curve": "learning_curve.png", "confusion matrix": "confusion.png"}


def main() -> None:
    html = (HERE / "output" / "report.html").read_text(encoding="utf-8")
    for alt, data in re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)">', html):
        if alt in NAMES:
            (DOCS / NAMES[alt]).write_bytes(base64.b64decode(data))
            print(f"wrote {DOCS / NAMES[alt]}")


if __name__ == "__main__":
    main()
