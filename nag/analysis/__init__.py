"""The analysis side: what happens to runs after training.

``runs`` finds runs and sweeps on disk and reads what they are; ``metrics`` and ``samplers`` measure and sample
trained models; ``evaluation`` evaluates one model; ``findings`` and ``report`` reproduce the lab report;
``compare`` compares the jobs of a sweep; ``plots`` draws their figures. Analysis imports the model side
(``nag.training.module``, ``nag.model.priors``, ...); the model side never imports analysis.
"""
