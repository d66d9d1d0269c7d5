"""gansvr_ns: single-view 3D reconstruction learned from GAN pseudo views, as a nerfstudio plugin.

Keep this module empty of imports: nerfstudio loads the dataparser entry point while its own registry
is still importing, and anything heavy imported here would break `ns-train`.
"""

__version__ = "0.1.0"
