"""Experiments as a library: a TrainConfig (flags, presets, checks) and what it builds."""
from .build import (Run, build_model, build_optimizer, build_run, build_scheduler, machine,
                    restore)
from .config import PRESETS, TrainConfig, check_config, check_flags, make_config
from .runfolder import COMPARE_FILES, TRAIN_FILES, RunLock, claim_run_folder

__all__ = ["Run", "build_model", "build_optimizer", "build_run", "build_scheduler", "machine",
           "restore", "PRESETS", "TrainConfig", "check_config", "check_flags", "make_config",
           "COMPARE_FILES", "TRAIN_FILES", "RunLock", "claim_run_folder"]
