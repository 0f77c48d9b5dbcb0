"""Build the HTML reference of snnkit's stable Python API (``snnkit`` and its contract kit ``snnkit.testing``) from
the docstrings, with pdoc. Any warning pdoc raises (a name in ``__all__`` that does not resolve, a broken
cross-reference, a docstring it cannot parse) is an error: the test suite runs this script.

    pip install pdoc          # in requirements-test.txt
    python scripts/api_reference.py docs/_build/api      # then open docs/_build/api/index.html
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

#: the stable API; everything else (snnkit_core, snnkit_cli) is internal
MODULES = ("snnkit", "snnkit.testing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (created)")
    args = parser.parse_args(argv)
    try:
        import pdoc
        import pdoc.render
    except ImportError:
        sys.exit("the API reference needs pdoc: pip install pdoc (requirements-test.txt has it)")
    import snnkit

    for name in snnkit.__all__:  # the API is loaded on first use (import snnkit stays light); pdoc reads __dict__
        if hasattr(snnkit, name):  # a name that does not resolve: pdoc's warning, an error here, names it
            setattr(snnkit, name, getattr(snnkit, name))
    warnings.filterwarnings("error", module=r"pdoc(\..*)?$")  # pdoc's own warnings only, not the libraries'
    pdoc.render.configure(docformat="restructuredtext", show_source=False, search=True)
    pdoc.pdoc(*MODULES, output_directory=args.out)
    print(f"wrote {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
