"""Figures and latent diagnostics written to TensorBoard at the end of every validation epoch.

Every callback uses fixed inputs (the first validation images) and fixed noise (a seeded generator), so
grids from different epochs, and from different runs on the same data, show the same faces and codes.
They read only the module's public API: ``encode``, ``decode``, ``interpolate``, ``prior``.

Each callback is one concept in one module (and one yaml in ``conf/callbacks/``):

- :mod:`~nag.training.callbacks.grids`: reconstructions, interpolation, prior samples, the far-away probes;
- :mod:`~nag.training.callbacks.edits`: attribute edits (``callbacks=with_edits``);
- :mod:`~nag.training.callbacks.latent`: latent diagnostics (code statistics, held-out MMD) and custom scalars;
- :mod:`~nag.training.callbacks.projector`: the codes in TensorBoard's Projector tab;
- :mod:`~nag.training.callbacks.summary`: the run's overrides and final metrics in the HParams tab;
- :mod:`~nag.training.callbacks.common`: what they share (the TensorBoard writer, fixed inputs, display size).
"""
