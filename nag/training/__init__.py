"""The Lightning glue: the LightningModule that orchestrates the model parts, checkpoint writing, the TensorBoard
callbacks and their image grids. Imports the model layer, never the analysis layer."""
