"""Keep the README's generated tables (data contract, feature catalog) in step with code.

``python -m refundguard.docs`` rewrites the blocks between the markers in README.md;
a test fails when the README is out of date.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from refundguard.config import FeaturesParams
from refundguard.contract import contract_markdown
from refundguard.features import build_catalog, catalog_markdown
from refundguard.paths import PROJECT_ROOT


def generated_blocks() -> dict[str, str]:
    """The generated README blocks by marker name.

    Returns:
        Markdown for "contract" and "features" (default feature windows).
    """
    return {
        "contract": contract_markdown(),
        "features": catalog_markdown(build_catalog(FeaturesParams())),
    }


def _replacer(block: str) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        return m.group(1) + block + m.group(2)

    return replace


def render_readme(text: str) -> str:
    """Replace every ``<!-- NAME:start -->...<!-- NAME:end -->`` block with its content.

    Args:
        text: README text.

    Returns:
        The updated text.

    Raises:
        ValueError: A marker pair is missing.
    """
    for name, block in generated_blocks().items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- {name}:start --> ... <!-- {name}:end --> block")
        text = pattern.sub(_replacer(block), text)
    return text


def main(readme: Path = PROJECT_ROOT / "README.md") -> None:
    """Rewrite README.md's generated blocks in place.

    Args:
        readme: The README file.
    """
    readme.write_text(render_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
