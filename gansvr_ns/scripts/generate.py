"""`gansvr-generate`: write a pseudo-view dataset (FORMAT.md) from one of the project's data sources.

    gansvr-generate procedural --category car --num-instances 64 --out data/my-car
    gansvr-generate stylegan2 --checkpoint G.pt --view-codes labels.json --segmenter-weights seg.pth --out DIR
    gansvr-generate folder ...   (a user's existing GAN views, images + masks + pose labels)
"""

from __future__ import annotations

import sys
from typing import Union

import tyro
from typing_extensions import Annotated

from gansvr_ns.data.format import FormatError
from gansvr_ns.data.procedural.source import ProceduralConfig
from gansvr_ns.data.sources.folder import FolderSourceConfig
from gansvr_ns.data.sources.stylegan2 import StyleGan2SourceConfig

Sources = Union[
    Annotated[ProceduralConfig, tyro.conf.subcommand("procedural", description="Procedural shapes, rendered.")],
    Annotated[StyleGan2SourceConfig, tyro.conf.subcommand("stylegan2", description="A StyleGAN2 checkpoint.")],
    Annotated[FolderSourceConfig, tyro.conf.subcommand("folder", description="A folder of existing GAN views.")],
]


def entrypoint() -> None:
    config = tyro.cli(Sources)
    try:
        config.main()
    except (FormatError, ValueError, FileNotFoundError) as err:
        print(f"gansvr-generate: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entrypoint()
