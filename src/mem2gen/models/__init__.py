"""Diffusion models: schedules and samplers, the networks (diffusers' U-Net, an MLP, the exact denoiser),
foreign checkpoints read as data, training, sampling and trained ensembles."""
