"""Run configuration: one frozen record that says everything needed to rerun a training run."""

from __future__ import annotations

import json
import math
import tomllib
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen

from snnkit_core.contract.errors import ConfigError

#: the dataset that ships inside snnkit-datasets, so `snnkit train` works offline
DEFAULT_DATASET = "espeak-digits"


def _tuple_int(v) -> tuple[int, ...]:
    try:
        out = tuple(int(p) for p in v.replace(" ", "").split(",") if p) if isinstance(v, str) else tuple(v)
    except (ValueError, TypeError):
        out = ()
    if not out or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in out):
        raise ConfigError(f"hidden sizes must be positive integers separated by commas, like 400,400,400; got {v!r}")
    return out


def _tuple_str(v) -> tuple[str, ...]:
    out = (v,) if isinstance(v, str) else tuple(v) if isinstance(v, (list, tuple)) else None
    if not out or not all(isinstance(x, str) and x for x in out):
        raise ConfigError(f"rules must be a rule name or a list of names, like [\"tssl-bp\", \"bip\"]; got {v!r}")
    if twice := sorted({x for x in out if out.count(x) > 1}):
        raise ConfigError(f"rule {', '.join(map(repr, twice))} is given more than once; give each rule once (--rule "
                          "tssl-bp --rule bip)")
    return out


def _check(kind, *, minimum=None, optional=False, below=None):
    """An attrs validator that raises ConfigError naming the key, the value and what was expected."""

    def validate(inst, attribute, value):
        if value is None and optional:
            return
        want = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}[kind]
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
              "str": isinstance(value, str) and value != "", "bool": isinstance(value, bool)}[kind]
        if ok and minimum is not None:
            ok = value > 0 if minimum == "positive" else value >= minimum
            want += " > 0" if minimum == "positive" else f" >= {minimum}"
        if ok and below is not None:
            ok = value < below
            want += f" and < {below}"
        if not ok:
            raise ConfigError(f"{attribute.name} must be {want}; got {value!r}")

    return validate


@frozen(kw_only=True)
class TrainConfig:
    neuron: str = field(default="lif", validator=_check("str"))
    conn: str = field(default="srsc", validator=_check("str"))
    rules: tuple[str, ...] = field(default=("bptt",), converter=_tuple_str)
    dataset: str = field(default=DEFAULT_DATASET, validator=_check("str"))
    data_dir: str | None = field(default=None, validator=_check("str", optional=True))
    hidden: tuple[int, ...] = field(default=(128, 128, 128), converter=_tuple_int)
    epochs: int = field(default=10, validator=_check("int", minimum=1, below=2**31))
    #: stop once the validation accuracy has not improved for this many epochs (None: train every epoch)
    patience: int | None = field(default=None, validator=_check("int", minimum=1, optional=True))
    batch_size: int = field(default=32, validator=_check("int", minimum=1))
    #: learning rate and weight decay; None: the gradient rule's defaults
    lr: float | None = field(default=None, validator=_check("float", minimum="positive", optional=True))
    weight_decay: float | None = field(default=None, validator=_check("float", minimum=0, optional=True))
    seed: int = field(default=0, validator=_check("int", minimum=0, below=2**32))
    device: str = field(default="auto", validator=_check("str"))
    backend: str = field(default="auto", validator=_check("str"))  # auto | triton | torch | reference (Network.backend)
    #: at most this many train (and test) examples
    limit: int | None = field(default=None, validator=_check("int", minimum=1, optional=True))
    #: "spiking" or "linear"; None: the gradient rule's default
    readout: str | None = field(default=None, validator=_check("str", optional=True))
    bias: bool = field(default=False, validator=_check("bool"))
    init: str = field(default="kaiming", validator=_check("str"))
    weight_scale: float = field(default=1.0, validator=_check("float", minimum="positive"))
    #: keep each split on the training device as one tensor (no per-batch host-to-GPU copy); off: batches are copied
    data_on_device: bool = field(default=False, validator=_check("bool"))
    #: share of the training split held out (stratified, seeded) to choose the best epoch when the dataset has
    #: no ``val`` split of its own; 0 disables validation (snnkit_core.engine.data)
    val_fraction: float = field(default=0.1, validator=_check("float", minimum=0, below=1))
    #: after each hidden layer's feedforward product; one mask per sample for all steps
    dropout: float = field(default=0.0, validator=_check("float", minimum=0, below=1))
    #: a run directory whose checkpoint's weights the network starts from (``--init-from``; optimizer state not taken)
    init_from: str | None = field(default=None, validator=_check("str", optional=True))
    #: per-component parameter overrides: {"neuron": {...}, "conn": {...}, "dataset": {...}, "rule.NAME": {...}}
    params: dict[str, dict[str, Any]] = field(factory=dict)

    @params.validator
    def _params_are_tables(self, attribute, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
            raise ConfigError(
                "params must map a section (neuron, conn, dataset, rule.NAME) to a table of parameters, "
                f'e.g. [train.params.neuron] tau_m = 8; got {value!r}'
            )

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:  # TOML is UTF-8 text
            raise ConfigError(f"config file {path} is not valid TOML: {exc}; fix it (saved as UTF-8)") from None
        if "train" in data:
            other = sorted(k for k in data if k != "train")
            if other:  # e.g. a misspelt [trian] next to [train] would otherwise be ignored
                raise ConfigError(f"config file {path}: unknown section{'s' if len(other) > 1 else ''} "
                                  f"{', '.join(map(repr, other))} next to [train]; everything goes under [train] "
                                  "(component parameters under [train.params.SECTION])")
            data = data["train"]
            if not isinstance(data, dict):
                raise ConfigError(f"config file {path}: train must be a table ([train]); got {data!r}")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        names = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            hints = ", ".join(repr(k) + (f" (did you mean {m[0]!r}?)" if (m := get_close_matches(k, names, 1)) else "")
                              for k in unknown)
            raise ConfigError(f"{source}: unknown keys {hints}. Known keys: {', '.join(sorted(names))}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def evolve(self, **changes) -> TrainConfig:
        return attrs.evolve(self, **{k: v for k, v in changes.items()})


def dump_toml(data: dict[str, Any], table: str = "") -> str:
    """A TOML writer for run configs: scalars and lists written as JSON (whose literals and escapes are valid TOML),
    nested dicts as ``[tables]`` after the keys; None is left out (it means the default)."""
    keys = [f"{_key(k)} = {json.dumps(v, ensure_ascii=False)}" for k, v in data.items()
            if v is not None and not isinstance(v, dict)]
    out = "\n".join(([f"[{table}]"] if table and keys else []) + keys) + "\n"
    for k, v in data.items():
        if isinstance(v, dict):
            out += "\n" + dump_toml(v, f"{table}.{_key(k)}" if table else _key(k))
    return out.lstrip("\n")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k, ensure_ascii=False)


def absolute(path: str) -> str:
    """``path`` with ``~`` expanded, made absolute (a config must rerun from any working directory)."""
    return str(Path(path).expanduser().absolute())
