"""Slide reading is one package: ``wsolkit.data.camelyon`` uses ``wsolkit.wsi``, never the other way round."""

import subprocess
import sys


def test_wsi_does_not_import_data():
    code = ("import sys, wsolkit.wsi, wsolkit.wsi.heatmap, wsolkit.wsi.run; "
            "print(sorted(m for m in sys.modules if m.startswith('wsolkit.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_camelyon_uses_the_wsi_readers():
    import wsolkit.data.camelyon as camelyon
    import wsolkit.wsi as wsi

    assert "TiffSlideReader" not in camelyon.__all__
    assert "TiffSlideReader" in wsi.__all__
