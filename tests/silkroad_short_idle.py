"""Example (c)'s controller with a 5 s idle timeout (tests/data/blackbox/silkroad-short-idle-config.json), for a
test that outlives it: ``--controller tests/silkroad_short_idle.py:Controller``."""

from pathlib import Path

from silkcheck.blackbox.controller import load_adapter

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).resolve().parent / "data" / "blackbox" / "silkroad-short-idle-config.json"


class Controller(load_adapter(f"{ROOT / 'examples' / 'silkroad' / 'controller.py'}:Controller")):  # type: ignore[misc]
    config_path = CONFIG
