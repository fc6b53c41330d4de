"""Data sets, loaded or simulated: MNIST and Fashion-MNIST (``mnist``), the 2-D Ising model's
Monte Carlo sampler and exact solutions (``ising``), covariance heatmaps (``heatmaps``),
galaxy rotation curves (``galaxies``) and the S-curve (``scurve``)."""
