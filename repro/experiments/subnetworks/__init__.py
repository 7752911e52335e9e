"""Polysemantic AlexNet units split into subnetworks: ``subnetworks.split``, its data, methods and figures."""
