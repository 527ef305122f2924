"""Where generated codes come from: the ``Sampler`` protocol, the prior, the ex-post Gaussian mixture and flow, and
the one registry of their names (:func:`make_sampler`; ``conf/sampler/`` selects the same classes)."""

from nag.samplers.core import MAX_COMPONENTS, SAMPLER_NAMES, GaussianMixtureSampler, PriorSampler, Sampler, make_sampler

__all__ = ["MAX_COMPONENTS", "SAMPLER_NAMES", "GaussianMixtureSampler", "PriorSampler", "Sampler", "make_sampler"]
