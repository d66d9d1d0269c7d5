"""Training renders colour only for the rays inside the mask: the losses and every gradient are those of colouring
all rays, and the rays outside get 0."""

import copy
from pathlib import Path

import torch

from tests.conftest import small_training_pipeline


def losses_and_gradients(pipeline, bundle, batch):
    model = pipeline.model
    model.zero_grad()
    model.condition(batch["condition_images"], batch.get("instances"))
    model.prepare_views(batch)
    torch.manual_seed(3)  # the same importance samples in both renderings
    outputs = model(copy.deepcopy(bundle))
    losses = model.get_loss_dict(outputs, batch)
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return outputs, {k: v.detach() for k, v in losses.items()}, grads


def test_only_rays_inside_the_mask_are_coloured_and_nothing_else_changes(ellipsoids: Path):
    pipeline = small_training_pipeline(ellipsoids)
    bundle, batch = pipeline.datamanager.next_train(0)
    inside = bundle.metadata["colour_rays"]
    assert torch.equal(inside, batch["mask"] > 0)
    assert 0 < int(inside.sum()) < len(inside)  # the batch has rays on both sides

    colour_calls = []
    hook = pipeline.model.field.color_output.register_forward_hook(lambda m, i, o: colour_calls.append(o.shape))
    outputs, losses, grads = losses_and_gradients(pipeline, bundle, batch)
    everything = copy.deepcopy(bundle)
    del everything.metadata["colour_rays"]
    all_outputs, all_losses, all_grads = losses_and_gradients(pipeline, everything, batch)
    hook.remove()

    assert colour_calls[0][0] == int(inside.sum()) and colour_calls[1][0] == len(inside)
    rows = inside[:, 0]
    torch.testing.assert_close(outputs["rgb"][rows], all_outputs["rgb"][rows])
    assert torch.equal(outputs["rgb"][~rows], torch.zeros_like(outputs["rgb"][~rows]))
    assert not torch.equal(all_outputs["rgb"][~rows], outputs["rgb"][~rows])
    torch.testing.assert_close(outputs["accumulation"], all_outputs["accumulation"])
    assert losses.keys() == all_losses.keys()
    for name in losses:
        torch.testing.assert_close(losses[name], all_losses[name], msg=name)
    assert grads.keys() == all_grads.keys()
    assert grads["field.color_output.weight"].abs().sum() > 0
    for name in grads:
        torch.testing.assert_close(grads[name], all_grads[name], atol=1e-6, rtol=1e-4, msg=name)


def test_outside_training_every_ray_is_coloured(ellipsoids: Path):
    pipeline = small_training_pipeline(ellipsoids)
    bundle, batch = pipeline.datamanager.next_train(0)
    pipeline.eval()
    pipeline.model.condition(batch["condition_images"], batch.get("instances"))
    with torch.no_grad():
        rgb = pipeline.model(copy.deepcopy(bundle))["rgb"]
    outside = ~bundle.metadata["colour_rays"][:, 0]
    assert (rgb[outside].sum(-1) > 0).any()
