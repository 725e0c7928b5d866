"""/draw: MNIST-faithful preprocessing of a drawn digit and the models that predict it."""
