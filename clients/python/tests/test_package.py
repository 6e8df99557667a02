"""The package as installed: its README's examples are the example apps the tests run, its
types check under ``mypy --strict``, and it carries its ``py.typed`` marker and dependencies."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import signoff_verify

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_examples_are_the_example_apps_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = dict(re.findall(r"<!-- (examples/\S+) -->\n```python\n(.*?)```\n", readme, re.DOTALL))
    assert sorted(blocks) == ["examples/django_app.py", "examples/fastapi_app.py"]
    for path, block in blocks.items():
        assert block == (ROOT / path).read_text(), f"README.md's {path} differs from the file"


def test_mypy_strict_passes_on_the_sources() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", "src"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout


def test_the_installed_distribution_is_typed_and_pins_pyjwt_past_its_cve() -> None:
    assert Path(signoff_verify.__file__).with_name("py.typed").is_file()
    dist = distribution("signoff-verify")
    requires = dist.requires or []
    assert "PyJWT[crypto]>=2.10.1" in requires
    assert {"django", "fastapi"} <= set(dist.metadata.get_all("Provides-Extra") or [])
    assert not any(r.split(";")[0].strip().lower().startswith(("requests", "httpx")) for r in requires)
