"""Inputs and outputs: readers of saved predictions (readers), files written as a unit
(outputs), small example data (examples)."""

from calibrate.io import llm, outputs
from calibrate.io.readers import Predictions, read_json, read_predictions

__all__ = ["Predictions", "llm", "outputs", "read_json", "read_predictions"]
