"""Compatibility layers: programs written for other xtquant interfaces run over xtqueue unchanged."""
