"""Codes moved along attribute directions, drawn every validation epoch (``callbacks=with_edits``)."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from torch import Tensor

from nag.config.params import Count, checked
from nag.model.latent_edit import attribute_directions, chosen
from nag.training.callbacks.common import encode_batched, fixed_images, n_val_images
from nag.training.callbacks.grids import ValidationFigure
from nag.training.figures import edit_grid


class AttributeEdits(ValidationFigure):
    """``images/attribute_edits`` (optional, ``callbacks=with_edits``): rows = attributes for each of ``faces``
    validation faces, columns = the code moved by −2 … +2 times the attribute's direction, the directions
    estimated each epoch from the codes of ``n_train`` training images.

    Args:
        attributes: Attributes to show, where the dataset has them (else its first six).
        faces: Validation faces edited.
        n_train: Training images the directions are estimated from.
    """

    @checked
    def __init__(
        self,
        attributes: Sequence[str] = ("Eyeglasses", "Smiling", "Blond_Hair", "Sunglasses"),
        faces: Count = 2,
        n_train: Count = 1000,
        every_n_epochs: Count = 1,
    ) -> None:
        super().__init__(every_n_epochs)
        self.attributes, self.faces, self.n_train = list(attributes), faces, n_train

    def figures(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Tensor]:
        dm = trainer.datamodule
        if not dm.attribute_names:
            return {}
        x, a = dm.fixed_batch("train", min(self.n_train, len(dm.dataset("train"))))
        z = encode_batched(module, x)  # (n, d)
        shown = chosen(attribute_directions(z, a.to(z.device), dm.attribute_names), self.attributes)
        faces = fixed_images(trainer, min(self.faces, n_val_images(trainer))).to(module.device)
        return {"images/attribute_edits": edit_grid(module, faces, shown)} if shown else {}
