"""Procedural pseudo views: random parametric cars, chairs and airplanes rendered with GAN-like flaws.

`ProceduralConfig` (the `gansvr-generate procedural` subcommand) and `generate` live in `source.py`; importing
this package stays light (torch is imported only when generating).
"""

from gansvr_ns.data.procedural.source import ProceduralConfig, generate

__all__ = ["ProceduralConfig", "generate"]
