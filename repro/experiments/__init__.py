"""Every experiment family registers here, in one visible place."""

from repro.experiments import calibration, tms
from repro.registry import register

register(calibration.EXPERIMENT)
register(tms.EXPERIMENT)
