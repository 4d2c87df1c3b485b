"""Server defaults: the app listens on 127.0.0.1 only, with XSRF protection and an upload limit that fits
a checkpoint but not much more; the README says how to expose it on purpose and what that means."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from diffusion_core.io.checkpoints import MAX_CHECKPOINT_BYTES, list_checkpoints

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".streamlit" / "config.toml"


def test_config_binds_localhost_with_xsrf_and_an_upload_limit():
    server = tomllib.loads(CONFIG.read_text())["server"]
    assert server["address"] == "127.0.0.1"  # `streamlit run` listens on every interface otherwise
    assert server["enableXsrfProtection"] is True
    limit = server["maxUploadSize"]
    assert isinstance(limit, int) and 1 <= limit <= 50  # MB; Streamlit's default is 200
    assert limit * 2**20 <= MAX_CHECKPOINT_BYTES  # the server refuses before the loader has to
    for weights, _ in list_checkpoints(ROOT / "checkpoints"):  # every shipped model can be uploaded back
        assert weights.stat().st_size < limit * 2**20, weights.name


def test_streamlit_itself_reads_these_settings():
    """`streamlit config show` run from the project folder (as `streamlit run` is) resolves the same values."""
    out = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120).stdout
    server = tomllib.loads(CONFIG.read_text())["server"]
    assert f'address = "{server["address"]}"' in out
    assert "enableXsrfProtection = true" in out
    assert f"maxUploadSize = {server['maxUploadSize']}" in out


def test_readme_explains_exposing_the_app_on_purpose():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Exposing the app (classroom)"):]
    for needed in ("127.0.0.1", "XSRF", "20 MB", "--server.address 0.0.0.0", "firewall", "DIFFUSION_LAB_MAX_JOBS"):
        assert needed in section, needed
