"""The folder ``xtqueue run`` puts first on its command's PYTHONPATH: only ``sitecustomize.py`` (see launch.py)."""
