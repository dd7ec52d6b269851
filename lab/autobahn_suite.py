"""
The Autobahn testsuite's fuzzing client (wstest -m fuzzingclient) for
test_autobahn.py. autobahntestsuite runs on Python 2.7 only, so it is installed
with a Python 2.7 interpreter (pyenv's on this project's machines) into
.venv/autobahn-py2, from the pins in lab/requirements-autobahn.txt.
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.processes import BASE_DIR

REQUIREMENTS = BASE_DIR / "lab" / "requirements-autobahn.txt"
SITE_DIR = Path(sys.prefix) / "autobahn-py2"  # inside .venv: `make clean` drops it
INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 300
# wstest's entry point, with the installed folder as a site directory (its
# .pth files make zope's namespace package importable).
WSTEST = (
    "import site, sys; site.addsitedir(sys.argv.pop(1)); sys.argv[0] = 'wstest'; "
    "from autobahntestsuite.wstest import run; run()"
)


def find_python2() -> str | None:
    """A Python 2.7 interpreter: $AUTOBAHN_PYTHON2, python2.7 on PATH (if it
    runs: pyenv's shim does not unless 2.7 is selected), or pyenv's own."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [
        os.environ.get("AUTOBAHN_PYTHON2"),
        shutil.which("python2.7"),
        *sorted(glob.glob(f"{pyenv_root}/versions/2.7*/bin/python2.7"), reverse=True),
    ]
    for candidate in filter(None, candidates):
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if result.returncode == 0 and result.stdout.strip() == "(2, 7)":
            return candidate
    return None


def py2_pins() -> list[str]:
    return [
        line.strip()
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def install(python2: str) -> Path:
    """autobahntestsuite and its pinned dependencies in SITE_DIR, installed
    again only when the pins or the interpreter change."""
    pins = py2_pins()
    stamp = hashlib.sha256("\n".join([python2, *pins]).encode()).hexdigest()
    stamp_file = SITE_DIR / ".installed"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return SITE_DIR
    # Into a fresh folder, moved into place once complete: an interrupted or
    # concurrent install never leaves a half-installed SITE_DIR behind.
    building = SITE_DIR.with_name(f"{SITE_DIR.name}.{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    pins_file = building.with_name(f"{building.name}.txt")
    pins_file.write_text("\n".join(pins) + "\n")
    try:
        result = subprocess.run(
            [python2, "-m", "pip", "install", "--disable-pip-version-check",
             "--no-deps", "--target", str(building), "-r", str(pins_file)],
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"installing autobahntestsuite failed:\n{result.stdout}")
        (building / ".installed").write_text(stamp)
        shutil.rmtree(SITE_DIR, ignore_errors=True)
        building.rename(SITE_DIR)
    finally:
        pins_file.unlink(missing_ok=True)
        shutil.rmtree(building, ignore_errors=True)
    return SITE_DIR


def run_fuzzing_client(
    python2: str, site_dir: Path, *, url: str, cases: list[str], exclude: list[str],
    workdir: Path,
) -> dict[str, dict]:  # fmt: skip
    """Run the cases against `url`; their results by case id, each with the
    case's own report (description, close codes) under "report"."""
    outdir = workdir / "reports"
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": "daphne", "url": url}],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    (workdir / "fuzzingclient.json").write_text(json.dumps(spec))
    with (workdir / "wstest.log").open("wb") as log:
        subprocess.run(
            [python2, "-c", WSTEST, str(site_dir), "-m", "fuzzingclient",
             "-s", "fuzzingclient.json"],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT,
            check=True,
        )  # fmt: skip
    results = json.loads((outdir / "index.json").read_text())["daphne"]
    for result in results.values():
        result["report"] = json.loads((outdir / result["reportfile"]).read_text())
    return results


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))
