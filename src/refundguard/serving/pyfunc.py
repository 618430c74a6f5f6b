"""MLflow "model from code" for the exported scorer.

The export stage hands this file to ``mlflow.pyfunc.save_model(python_model=...)``, so the
model is defined by source code and data artifacts rather than a pickled object.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel, PythonModelContext

from refundguard.errors import InputError
from refundguard.serving.scorer import Scorer


class RequestError(MlflowException):
    """A bad request, answered with HTTP 400 and this short message only.

    MLflow's scoring server rewrites the message of an MlflowException raised by
    ``predict`` to "Failed to predict data '<the whole request>'. Error: ..." (kilobytes
    of echoed input, the useful part at the end). The message set at construction is
    kept and later assignments are ignored, so the client reads one line naming the
    column and the problem. Any other exception would become a 400 "unexpected error"
    carrying a full stack trace with server paths.
    """

    def __init__(self, message: str) -> None:
        self._short = message
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        """The message given at construction."""
        return self._short

    @message.setter
    def message(self, value: str) -> None:
        # Deliberately ignored: see the class docstring.
        pass


class RefundGuardModel(PythonModel):
    """pyfunc wrapper around :class:`refundguard.scorer.Scorer`."""

    def load_context(self, context: PythonModelContext) -> None:
        """Build the scorer from the model's artifact files.

        Args:
            context: MLflow's context with the artifact paths.
        """
        self.scorer = Scorer.from_artifacts(context.artifacts)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Score feature rows.

        Args:
            context: MLflow's context (unused; artifacts are read at load time).
            model_input: buyer_id and the feature columns.
            params: ``{"reasons": false}`` skips the reasons (faster); default true.

        Returns:
            The columns of :meth:`refundguard.scorer.Scorer.score`, one row per input row.

        Raises:
            RequestError: The rows or params are unusable (a column missing, unexpected,
                not numeric, null where not allowed or out of range; buyer_id missing;
                reasons not true or false); the message names the column and the problem.
        """
        reasons = True if params is None else params.get("reasons", True)
        if not isinstance(reasons, bool):
            raise RequestError(f"params 'reasons' must be true or false, got {reasons!r}")
        if not isinstance(model_input, pd.DataFrame):
            raise RequestError(
                "input must be a table (dataframe_split or dataframe_records), "
                f"got {type(model_input).__name__}"
            )
        try:
            return self.scorer.score(model_input, reasons=reasons)
        except InputError as exc:
            raise RequestError(str(exc)) from None


mlflow.models.set_model(RefundGuardModel())
