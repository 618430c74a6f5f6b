"""MLflow "model from code" for the exported scorer.

The export stage hands this file to ``mlflow.pyfunc.save_model(python_model=...)``, so the
model is defined by source code and data artifacts rather than a pickled object.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from refundguard.scorer import Scorer


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
        """
        reasons = True if params is None else bool(params.get("reasons", True))
        return self.scorer.score(model_input, reasons=reasons)


mlflow.models.set_model(RefundGuardModel())
