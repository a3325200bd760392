"""Experiments as a library: a TrainConfig (flags, presets, checks) and what it builds."""
from .build import (Run, build_model, build_optimizer, build_run, build_scheduler, machine,
                    prepare_out_dir, restore)
from .config import PRESETS, TrainConfig, check_config, check_flags, make_config

__all__ = ["Run", "build_model", "build_optimizer", "build_run", "build_scheduler", "machine",
           "prepare_out_dir", "restore", "PRESETS", "TrainConfig", "check_config", "check_flags",
           "make_config"]
