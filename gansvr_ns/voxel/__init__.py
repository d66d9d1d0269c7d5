"""gansvr-voxel: image -> latent -> 3D deconvolution decoder -> occupancy grid (issue 7, Wang & Fang 2017).

Keep this module empty of imports: nerfstudio loads plugin entry points while its own registries import.
"""
