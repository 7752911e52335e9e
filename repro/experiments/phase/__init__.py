"""Phase diagrams of one-neuron toy models (Elhage et al. 2022, zroe1): ``phase.one_neuron`` and its figures."""
