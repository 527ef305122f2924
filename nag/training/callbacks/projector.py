"""The codes of validation faces in TensorBoard's Projector tab, at the end of training."""

from __future__ import annotations

import lightning as L

from nag.config.params import Count, checked
from nag.training.callbacks.common import encode_batched, n_val_images, tensorboard_writer


class LatentProjector(L.Callback):
    """At the end of training, the codes of ``n`` validation faces in TensorBoard's Projector tab, with their
    thumbnails and attribute labels, so the latent space can be coloured by attribute (PCA, t-SNE, UMAP there).

    Args:
        n: Validation faces embedded (fewer when the split is smaller).
        tag: The embedding's name.
    """

    @checked
    def __init__(self, n: Count = 500, tag: str = "latent_codes") -> None:
        self.n, self.tag = n, tag

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        x, attributes = dm.fixed_batch("val", min(self.n, n_val_images(trainer)))
        z = encode_batched(pl_module, x).cpu()  # (n, d)
        names = list(dm.attribute_names)
        if names:
            header = ["index", *names]
            metadata = [[str(i), *("yes" if a > 0.5 else "no" for a in row)] for i, row in enumerate(attributes)]
        else:
            header, metadata = None, [str(i) for i in range(len(x))]
        writer.add_embedding(
            z, metadata=metadata, metadata_header=header, label_img=x, tag=self.tag, global_step=trainer.global_step
        )
