"""``specc train``: TRL's own trainers (DPO, KTO, SFT) on a dataset's **train** split.

- :mod:`~specc.train.data`: which files are the train split (never a test file) and the columns
  each method takes;
- :mod:`~specc.train.run`: :func:`train_model` (the command: LoRA or full, checkpoints, resume,
  OUT as a plain model directory) and :func:`train` (the minimal recipe: a few steps, metrics only);
- :mod:`~specc.train.card`: the training card, ``OUT/README.md``.

It sits above ``emit``: it reads datasets and models, and nothing below imports it.
"""

from specc.train.data import TrainError, TrainFailure, find_data_files, load_train_split
from specc.train.run import TrainOptions, TrainResult, train, train_model

__all__ = ["TrainError", "TrainFailure", "TrainOptions", "TrainResult", "find_data_files", "load_train_split",
           "train", "train_model"]
