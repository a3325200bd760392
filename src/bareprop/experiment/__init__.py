"""Experiments as a library: a TrainConfig (flags, presets, checks) and what it builds."""
from .build import (Run, build_model, build_optimizer, build_run, build_scheduler, machine,
                    restore)
from .checks import check_config, check_flags, make_config
from .config import TrainConfig
from .presets import PRESETS

__all__ = ["Run", "build_model", "build_optimizer", "build_run", "build_scheduler", "machine",
           "restore", "PRESETS", "TrainConfig", "check_config", "check_flags", "make_config"]
