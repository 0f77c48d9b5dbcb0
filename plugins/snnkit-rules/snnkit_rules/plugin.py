"""Entry point of snnkit-rules: every module of the package with a register(register) function is registered."""

import snnkit_rules
from snnkit_core import hookimpl
from snnkit_core.contract.discover import register_submodules


@hookimpl
def register_rules(register):
    register_submodules("snnkit_rules", snnkit_rules.__path__, register)
