"""A signed distance field conditioned on an image latent, with a colour head.

Inputs to the SDF MLP are the position, its positional encoding and a multi-resolution hash grid
(nerfstudio's `HashEncoding`: tiny-cuda-nn where it imports, pure torch otherwise). The latent enters
either by concatenation (a latent-dependent bias of the first layer, which is exactly concatenating the
latent to the input) or by FiLM (a latent-dependent scale and shift of every hidden layer). Latent terms are
computed once per instance (`encode_latents`) and broadcast over that instance's samples, so conditioning
costs nothing per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, Optional, Tuple

import torch
from jaxtyping import Float
from nerfstudio.field_components.encodings import HashEncoding, NeRFEncoding
from torch import Tensor, nn

from gansvr_ns.data.hull import trilinear, trilinear_instances
from gansvr_ns.model.activations import Softplus


def tcnn_available() -> bool:
    """True when tiny-cuda-nn imports and CUDA is present: the one guarded place that asks."""
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError, EnvironmentError):
        return False
    return torch.cuda.is_available()


def resolve_implementation(choice: Literal["auto", "tcnn", "torch"]) -> Literal["tcnn", "torch"]:
    """`auto` picks tcnn when it is usable and torch otherwise; asking for tcnn without it is an error (`DataError`)."""
    if choice == "auto":
        return "tcnn" if tcnn_available() else "torch"
    if choice == "tcnn" and not tcnn_available():
        from gansvr_ns.data.datamanager import DataError  # one line in ns-train, not a traceback

        raise DataError(
            "gansvr: --pipeline.model.sdf-field.implementation tcnn needs tinycudann and a CUDA GPU "
            "(pip install '.[cuda]'); use torch or auto on this machine"
        )
    return choice


FILM_SCALE_GAIN = 0.1
"""FiLM's scale offsets s (each unit's scale is 1 + s) are this times the linear map of the latent: they start at
about N(0, 0.1^2) rather than N(0, 1), and each optimiser step moves them a tenth as far as the shifts. At full
gain, many units start with a negative scale in every layer and an Adam step of 1e-3 on each of the map's weights
moves a scale by up to 0.2; training diverged within 20 steps (the eikonal term from 0.02 to 1.5)."""


@dataclass
class SDFFieldConfig:
    """Architecture of the conditioned SDF field (part of the model config; `ns-export` looks for it)."""

    architecture: Literal["conditioned", "hypernetwork"] = "conditioned"
    """conditioned: one shared SDF MLP that takes the latent (see `conditioning`); hypernetwork: the latent is
    mapped to the weights of a small per-instance SDF MLP (the authors' design; width `hyper_hidden_dim`)."""
    conditioning: Literal["concat", "film"] = "concat"
    """How the latent enters the shared SDF MLP: a first-layer bias (concatenation) or FiLM on every hidden layer."""
    hidden_dim: int = 96
    """Width of the SDF MLP. 96 rather than 64: a wider layer does more of a step's work in matrix products, which
    run near this CPU's GEMM rate, while the step's elementwise passes grow only with the width (docs/benchmarks.md,
    Speed)."""
    num_layers: int = 3
    """Number of hidden layers of the SDF MLP."""
    geo_feat_dim: int = 15
    """Geometry features passed from the SDF MLP to the colour head."""
    num_frequencies: int = 6
    """Positional-encoding frequencies per axis (the finest wavelength is 2 pi / 2^(n-1): 0.2 for n = 6, fine
    enough for wheels and cabins of a unit-sphere object; the input grows by 6 per frequency, nearly free)."""
    use_hash_grid: bool = True
    """Feed a multi-resolution hash grid to the SDF MLP besides the positional encoding (the gansvr method's
    default turns it on only where tiny-cuda-nn runs: on a CPU the torch grid costs ~10x the MLP)."""
    hash_levels: int = 8
    """Hash grid levels."""
    hash_min_res: int = 8
    """Coarsest hash grid resolution over the [-1, 1]^3 box."""
    hash_max_res: int = 64
    """Finest hash grid resolution."""
    hash_log2_size: int = 16
    """log2 of the hash table size per level."""
    hash_features: int = 2
    """Features per hash level."""
    implementation: Literal["auto", "tcnn", "torch"] = "auto"
    """Hash grid backend: tiny-cuda-nn when it imports (auto), or pure torch."""
    base_grid_resolution: int = 48
    """Cells per axis of the signed distance grid a field may start from (see `set_base_grid`). The start shape that
    ns-train gives it (the mean visual hull) is carved at 48 cells a side and resampled to this."""
    latent_grid_resolution: int = 0
    """Cells per axis of a coarse signed distance offset grid decoded linearly from the latent and added to the
    SDF (0: none). Each cell then moves with the latent on its own, where the MLP's residual must bend one shared
    function for every instance."""
    init_radius: float = 0.6
    """Radius of the sphere the SDF starts as: the SDF is |x| - init_radius plus the MLP's residual."""
    softplus_beta: float = 100.0
    """Sharpness of the softplus activations of the SDF MLP."""
    hyper_hidden_dim: int = 32
    """Width of the per-instance SDF MLP whose weights the hypernetwork generates."""
    hyper_width: int = 256
    """Hidden width of the hypernetwork itself."""
    color_hidden_dim: int = 64
    """Width of the colour head."""
    color_layers: int = 2
    """Hidden layers of the colour head."""
    shading: Literal["free", "lambertian"] = "free"
    """free: the colour head reads the normal and the view direction and may paint any shading; lambertian: it reads
    neither and gives an albedo, lit by a light decoded from the latent (ambient + key max(n.l, 0) + fill max(n.v, 0),
    the key light fixed in the object frame, the fill from the camera), so the shading of the pseudo views must come
    from the surface's normals rather than from paint."""
    symmetric: bool = False
    """Make the SDF mirror-symmetric about the object frame's y = 0 plane, the left-right plane of an object whose
    front faces +x (FORMAT.md's canonical frame): the field reads (x, sqrt(y^2 + e^2), z) with e =
    `symmetry_smoothing`, so every view also shapes the side it does not see, and the offset grid of
    `latent_grid_resolution` spans the half y >= 0 with all its cells."""
    symmetry_smoothing: float = 0.02
    """The e above: the folded coordinate is smooth across the plane, so the surface meets it without a crease."""


def fold_mirror(positions: Float[Tensor, "*batch 3"], smoothing: float) -> Float[Tensor, "*batch 3"]:
    """(x, y, z) -> (x, sqrt(y^2 + smoothing^2), z): the same point for a position and its mirror image in the y = 0
    plane, smooth across that plane (any function of the result is symmetric and has no crease there)."""
    x, y, z = positions.unbind(-1)
    return torch.stack([x, torch.sqrt(y * y + smoothing * smoothing), z], dim=-1)


class LatentCode(NamedTuple):
    """Per-instance conditioning terms, computed once from the latents (leading dimension: instance)."""

    geo: Tensor
    """concat: first-layer bias (B, H); film: scale and shift per hidden layer (B, L, 2, H)."""
    color: Tensor
    """First-layer bias of the colour head (B, Hc)."""
    latent: Tensor
    """The latents themselves (B, D)."""
    grid: Optional[Tensor] = None
    """Flattened SDF offset grids (G, res^3) with `latent_grid_resolution`, else None. `take` and `unsqueeze` never
    copy them (a grid per ray would cost more than the rest of the code): each entry reads the grid of its `rows`."""
    rows: Optional[Tensor] = None
    """Row of `grid` that each entry reads (integer, shaped like the other fields' leading dimensions); set with
    `grid`."""
    light: Optional[Tensor] = None
    """With lambertian shading, the light (B, 6): the key light's direction (unnormalised) and the ambient, key and
    fill strengths before a softplus; else None."""

    def take(self, index: Tensor) -> "LatentCode":
        """Select instances (e.g. one per ray) along the leading dimension."""
        return self._map(lambda t: t[index])

    def unsqueeze(self, dim: int = 1) -> "LatentCode":
        """Insert a broadcast dimension after the instance one, e.g. for the samples of each ray."""
        return self._map(lambda t: t.unsqueeze(dim))

    def _map(self, op) -> "LatentCode":
        """Apply `op` to every per-entry field (all but the shared `grid`)."""
        def optional(t: Optional[Tensor]) -> Optional[Tensor]:
            return None if t is None else op(t)

        return LatentCode(op(self.geo), op(self.color), op(self.latent), self.grid, optional(self.rows),
                          optional(self.light))


class ConditionedSDFField(nn.Module):
    """SDF and colour of an object, conditioned on a latent code.

    `forward_geonetwork(x)` evaluates the field for the selected instance (`select_latent`) and returns the SDF
    in column 0 followed by the geometry features, the interface nerfstudio's marching-cubes exporter calls.
    """

    def __init__(self, config: SDFFieldConfig, latent_dim: int):
        super().__init__()
        self.config = config
        self.latent_dim = latent_dim
        self.position_encoding = NeRFEncoding(
            in_dim=3, num_frequencies=config.num_frequencies, min_freq_exp=0.0,
            max_freq_exp=config.num_frequencies - 1, include_input=False,
        )
        self.hash_grid = None
        in_dim = 3 + self.position_encoding.get_out_dim()
        if config.use_hash_grid:
            self.hash_grid = HashEncoding(
                num_levels=config.hash_levels, min_res=config.hash_min_res, max_res=config.hash_max_res,
                log2_hashmap_size=config.hash_log2_size, features_per_level=config.hash_features,
                implementation=resolve_implementation(config.implementation),
            )
            in_dim += self.hash_grid.get_out_dim()
        self.hyper = config.architecture == "hypernetwork"
        hidden = config.hyper_hidden_dim if self.hyper else config.hidden_dim
        dims = [in_dim] + [hidden] * config.num_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.output = nn.Linear(hidden, 1 + config.geo_feat_dim)
        self.activation = Softplus(beta=config.softplus_beta)
        if self.hyper:
            # the shared layers above are the base weights; the hypernetwork adds a per-instance offset to all of them
            num_params = sum(p.numel() for p in [*self.layers.parameters(), *self.output.parameters()])
            self.latent_to_geo = nn.Sequential(
                nn.Linear(latent_dim, config.hyper_width), nn.ReLU(), nn.Linear(config.hyper_width, num_params)
            )
        elif config.conditioning == "concat":
            self.latent_to_geo = nn.Linear(latent_dim, hidden, bias=False)
        else:
            self.latent_to_geo = nn.Linear(latent_dim, config.num_layers * 2 * hidden)
            gain = torch.ones(config.num_layers, 2, 1)
            gain[:, 0] = FILM_SCALE_GAIN
            self.register_buffer("film_gain", gain, persistent=False)
        self.lambertian = config.shading == "lambertian"
        color_in = config.geo_feat_dim + (0 if self.lambertian else 3 + 3)
        cdims = [color_in] + [config.color_hidden_dim] * config.color_layers
        self.color_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(cdims[:-1], cdims[1:]))
        self.color_output = nn.Linear(config.color_hidden_dim, 3)
        self.latent_to_color = nn.Linear(latent_dim, config.color_hidden_dim, bias=False)
        self.latent_to_light = nn.Linear(latent_dim, 6) if self.lambertian else None
        self.latent_to_grid = None
        if config.latent_grid_resolution > 0:
            self.latent_to_grid = nn.Linear(latent_dim, config.latent_grid_resolution**3, bias=False)
        self.register_buffer("init_axes", torch.full((3,), float(config.init_radius)))
        res = config.base_grid_resolution
        self.register_buffer("base_grid", torch.zeros(res, res, res))
        self.register_buffer("use_base_grid", torch.tensor(False))
        self.geometric_init()
        self.selected: LatentCode = self.encode_latents(torch.zeros(1, latent_dim))

    # ------------------------------------------------------------------------------------------
    # Initialisation and conditioning.

    def geometric_init(self) -> None:
        """Start every instance as a sphere of radius `init_radius`.

        The SDF is the residual form sdf(x) = |x| - r + f(x), where f is the MLP's first output. Its SDF row
        starts at (almost) zero weight, so the field starts as the exact sphere SDF with unit gradient,
        whatever the latent; hidden layers get He-normal weights so the residual learns from step one.
        """
        for layer in self.layers:
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / layer.in_features))
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.output.weight[:1], 0.0, 1e-5)
        nn.init.zeros_(self.output.bias)
        if self.latent_to_grid is not None:
            nn.init.zeros_(self.latent_to_grid.weight)
        if self.latent_to_light is not None:
            # every instance starts lit from straight above, ambient 0.3, key 0.6, fill 0.2
            nn.init.normal_(self.latent_to_light.weight, 0.0, 0.1 / math.sqrt(self.latent_dim))
            strengths = torch.tensor([0.3, 0.6, 0.2])
            with torch.no_grad():
                self.latent_to_light.bias.copy_(torch.cat([torch.tensor([0.0, 0.0, 1.0]), strengths.expm1().log()]))
        if self.hyper:
            last = self.latent_to_geo[-1]
            nn.init.normal_(last.weight, 0.0, 1e-4 / math.sqrt(last.in_features))
            nn.init.zeros_(last.bias)
            return
        # The latent enters at full scale: the SDF row of `output` keeps the start a sphere whatever the hidden
        # units do, and a latent that barely moves them gives the encoder almost no gradient, so it collapses
        # to one code for every image (the mean shape).
        nn.init.normal_(self.latent_to_geo.weight, 0.0, 1.0 / math.sqrt(self.latent_dim))
        if self.config.conditioning == "film":
            nn.init.zeros_(self.latent_to_geo.bias)

    def encode_latents(self, latents: Float[Tensor, "batch latent_dim"]) -> LatentCode:
        """Per-instance conditioning terms of a batch of latents."""
        geo = self.latent_to_geo(latents)
        if self.hyper:
            base = torch.cat([p.reshape(-1) for p in [*self.layers.parameters(), *self.output.parameters()]])
            geo = geo + base
        elif self.config.conditioning == "film":
            geo = geo.view(latents.shape[0], self.config.num_layers, 2, self.config.hidden_dim)
            geo = geo * self.film_gain
        grid = rows = None
        if self.latent_to_grid is not None:
            # divided by the latent width: one optimiser step moves a cell by about the learning rate
            grid = self.latent_to_grid(latents) / self.latent_dim
            rows = torch.arange(len(latents), device=latents.device)
        light = None if self.latent_to_light is None else self.latent_to_light(latents)
        return LatentCode(geo=geo, color=self.latent_to_color(latents), latent=latents, grid=grid, rows=rows,
                          light=light)

    def select_latent(self, latent: Float[Tensor, "1 latent_dim"]) -> None:
        """Choose the instance that `forward_geonetwork` (export, viewer) evaluates."""
        with torch.no_grad():
            self.selected = self.encode_latents(latent.to(self.output.weight.device))

    # ------------------------------------------------------------------------------------------
    # Evaluation.

    def _inputs(self, positions: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch in_dim"]:
        positions = positions.contiguous()  # nerfstudio's positional encoding reshapes with view()
        features = [positions, self.position_encoding(positions)]
        if self.hash_grid is not None:
            unit = ((positions + 1.0) * 0.5).clamp(0.0, 1.0)  # the grid covers [-1, 1]^3
            flat = self.hash_grid(unit.reshape(-1, 3)).to(positions.dtype)
            features.append(flat.reshape(*positions.shape[:-1], -1))
        return torch.cat(features, dim=-1)

    def geometry(self, positions: Float[Tensor, "*batch 3"], code: LatentCode) -> Float[Tensor, "*batch out_dim"]:
        """SDF (column 0) and geometry features at `positions`; `code` broadcasts against `positions[..., 0]`."""
        if self.config.symmetric:
            positions = fold_mirror(positions, self.config.symmetry_smoothing)
        h = self._inputs(positions)
        if self.hyper:
            out = self._hyper_mlp(h, code.geo)
        else:
            for i, layer in enumerate(self.layers):
                h = layer(h)
                if self.config.conditioning == "concat":
                    if i == 0:
                        h = h + code.geo
                else:
                    h = h * (1.0 + code.geo[..., i, 0, :]) + code.geo[..., i, 1, :]
                h = self.activation(h)
            out = self.output(h)
        sdf = out[..., :1] + self.base_sdf(positions)
        if code.grid is not None:
            if self.config.symmetric:  # the folded y lies in [0, 1]: stretch it over the grid's [-1, 1]
                x, y, z = positions.unbind(-1)
                positions = torch.stack([x, 2.0 * y - 1.0, z], dim=-1)
            sdf = sdf + trilinear_instances(code.grid, positions, code.rows)
        return torch.cat([sdf, out[..., 1:]], dim=-1)

    def base_sdf(self, positions: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 1"]:
        """The shape every instance starts as: the SDF grid of `set_base_grid`, else (|x / a| - 1) min(a) for the
        semi-axes a of `init_axes`, which is the exact SDF |x| - r of a sphere when the axes are equal (the
        default, a = init_radius)."""
        if self.use_base_grid:
            return trilinear(self.base_grid, positions)
        scaled = (positions / self.init_axes).norm(dim=-1, keepdim=True)
        return (scaled - 1.0) * self.init_axes.min()

    def set_base_grid(self, grid: Float[Tensor, "res res res"]) -> None:
        """Start from the shape of a signed distance grid over [-1, 1]^3 (cell-centred; kept in checkpoints),
        resampled to `base_grid_resolution` cells a side where it has another size."""
        res = self.config.base_grid_resolution
        if tuple(grid.shape) != (res, res, res):  # resampled, cell centres to cell centres
            grid = nn.functional.interpolate(grid[None, None].float(), size=(res, res, res), mode="trilinear",
                                             align_corners=False)[0, 0]
        self.base_grid.copy_(grid)
        self.use_base_grid.fill_(True)

    def set_init_axes(self, axes: Float[Tensor, "3"]) -> None:
        """Start from an ellipsoid with semi-axes `axes` instead of the sphere (kept in checkpoints)."""
        self.init_axes.copy_(torch.as_tensor(axes, dtype=self.init_axes.dtype))

    def _hyper_mlp(self, h: Tensor, params: Tensor) -> Tensor:
        """The per-instance MLP with generated weights: `params` is (1, P) for all points, or (R, 1, P) per ray
        for `h` of shape (R, S, in)."""
        offset = 0
        layers = [*self.layers, self.output]
        for i, layer in enumerate(layers):
            n_in, n_out = layer.in_features, layer.out_features
            # nn.Linear stores weight as (out, in), flattened before the bias
            weight = params[..., offset : offset + n_in * n_out].reshape(*params.shape[:-1], n_out, n_in)
            offset += n_in * n_out
            bias = params[..., offset : offset + n_out]
            offset += n_out
            if weight.dim() == 3:  # one instance for every point
                h = h @ weight[0].T + bias[0]
            elif weight.shape[0] == 1:  # one instance for every ray (the selected one, e.g. in the viewer)
                h = h @ weight[0, 0].T + bias[0, 0]
            else:
                h = torch.bmm(h, weight[:, 0].transpose(1, 2)) + bias
            if i < len(layers) - 1:
                h = self.activation(h)
        return h

    def sdf(self, positions: Float[Tensor, "*batch 3"], code: LatentCode) -> Float[Tensor, "*batch 1"]:
        return self.geometry(positions, code)[..., :1]

    def forward_geonetwork(self, positions: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points out_dim"]:
        """SDF and geometry features of the selected instance (the interface `ns-export` uses)."""
        return self.geometry(positions, self.selected)

    def sdf_and_gradient(
        self, positions: Float[Tensor, "*batch 3"], code: LatentCode, create_graph: bool
    ) -> Tuple[Float[Tensor, "*batch out_dim"], Float[Tensor, "*batch 3"]]:
        """Geometry output and d(sdf)/dx by autograd (kept in the graph for the eikonal loss when training).

        Positions that already carry a graph (rays moved by the pose refinement) keep it, so the SDF, and with
        it the silhouette and colour losses, send gradients back to the camera poses.
        """
        with torch.enable_grad():
            if not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            out = self.geometry(positions, code)
            (gradient,) = torch.autograd.grad(
                out[..., :1], positions, torch.ones_like(out[..., :1]), create_graph=create_graph
            )
        return out, gradient

    def color(
        self,
        normals: Float[Tensor, "*batch 3"],
        directions: Float[Tensor, "*batch 3"],
        geo_features: Float[Tensor, "*batch geo_feat_dim"],
        code: LatentCode,
    ) -> Float[Tensor, "*batch 3"]:
        """RGB from the normal, view direction, geometry features and the latent: the colour head's output in [0, 1],
        or with lambertian shading its albedo in [0, 1] times the light's shading (`shade`)."""
        h = geo_features if self.lambertian else torch.cat([normals, directions, geo_features], dim=-1)
        for i, layer in enumerate(self.color_layers):
            h = layer(h)
            if i == 0:
                h = h + code.color
            h = torch.relu(h)
        rgb = torch.sigmoid(self.color_output(h))
        if self.lambertian:
            rgb = rgb * shade(code.light, normals, directions)[..., None]
        return rgb


def shade(light: Float[Tensor, "*batch 6"], normals: Float[Tensor, "*batch 3"],
          directions: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch"]:
    """ambient + key max(n.l, 0) + fill max(-n.d, 0) for unit normals n and ray directions d, with l the normalised
    key direction and the strengths the softplus of `light`'s last three entries (`LatentCode.light`)."""
    to_light = nn.functional.normalize(light[..., :3], dim=-1)
    ambient, key, fill = nn.functional.softplus(light[..., 3:]).unbind(-1)
    diffuse = (normals * to_light).sum(-1).clamp(min=0.0)
    facing = -(normals * directions).sum(-1).clamp(max=0.0)
    return ambient + key * diffuse + fill * facing
