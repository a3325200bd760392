"""Hyperparameter search: ``bareprop sweep`` on Optuna or Ray Tune (docs/sweeps.md).

space.py (the --space grammar and its checks), plan.py (a sweep checked whole before
it starts), trials.py and child.py (a trial's process, both sides), optuna_engine.py
and ray_engine.py (who draws, runs and prunes trials), record.py (sweep.json),
finish.py (the best trial's test accuracy, sweep.png).
"""
