"""Regenerate systemd/: the units of the reference install, from binderlite's service table.

The reference install: config /etc/binderlite/binderlite.toml, state /var/lib/binderlite (the default
settings), binderlite in /opt/binderlite/current, configurable-http-proxy and docker-registry where
scripts/install-debian.sh puts them. tests/unit/test_units.py fails when this folder is out of date.
"""

from pathlib import Path

from binderlite.services.units import reference_units, write_units

OUT = Path(__file__).resolve().parent.parent / "systemd"
for path in write_units(OUT, reference_units()):
    print(f"wrote {path}")
