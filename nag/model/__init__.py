"""The science, in plain torch (no Lightning, no Hydra): the nets, the priors, the matching distances, how well
codes fit a prior, learning-rate schedules. Nothing here imports the training, analysis or run layers."""
