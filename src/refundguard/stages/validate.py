"""Validate stage: raw tables to the contract, bad rows quarantined with their reason."""

from __future__ import annotations

from pathlib import Path

from refundguard.config import load_params
from refundguard.data.validate import (
    ValidationResult,
    check_reject_shares,
    validate_folder,
    write_result,
)
from refundguard.paths import PARAMS_FILE, VALIDATED_DIR, require_project


def main(
    params_path: Path = PARAMS_FILE,
    out_dir: Path = VALIDATED_DIR,
    input_dir: Path | None = None,
    encoding: str | None = None,
) -> ValidationResult:
    """Validate the configured input folder and write the results.

    Args:
        params_path: params.yaml to read.
        out_dir: Folder for validated tables, quarantine and report.
        input_dir: Input folder; default ``data.input_dir`` from params.
        encoding: CSV encoding; default ``data.encoding`` from params.

    Returns:
        The validation result (also written to ``out_dir``).

    Raises:
        DataContractError: A table is unusable; the quarantine and report are still
            written first, so that the user can see why.
        ConfigError: Run outside a project (no params.yaml found), or bad params.
    """
    require_project(params_path)
    params = load_params(params_path)
    result = validate_folder(params, input_dir, encoding)
    write_result(result, out_dir)
    check_reject_shares(result.report, params.validate.max_reject_share)
    return result
