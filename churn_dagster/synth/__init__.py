"""Synthetic NetEase Cloud Music data in the published file format (see docs/SYNTHETIC.md).

``generator.generate`` writes the six files; ``calibrate`` and ``predictability`` measure them.
"""
