"""Models and what they are trained on: encoder and decoder builders (``builders``), the
heatmap backbones (``backbones``), per-example loss terms (``losses``), autoencoders and
VAEs (``autoencoders``), the Ising checkerboard decoder (``checkerboard``), the restricted
Boltzmann machine (``rbm``), the variational autoregressive network for the Ising model
(``autoregressive``), the DCGAN (``gan``) and denoising diffusion (``diffusion``: noise
schedules, a small U-Net, DDPM and DDIM samplers)."""
