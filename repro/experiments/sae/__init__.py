"""A sparse autoencoder on an MNIST classifier's hidden layer: ``sae.mnist``, its models and figures."""
