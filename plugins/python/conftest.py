"""Lets pytest import each example plugin and the SDK from the source tree."""

import pathlib
import sys

here = pathlib.Path(__file__).parent
sys.path.insert(0, str(here.parent.parent / "sdk" / "python"))
for plugin in here.iterdir():
    if plugin.is_dir():
        sys.path.insert(0, str(plugin))
