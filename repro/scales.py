"""Switching params.yaml between the laptop and the paper scale: `repro scale NAME`.

scales/NAME.yaml lists only the keys that differ between the scales. They are
written into params.yaml in place (comments and order kept); a null value
removes a key. The result is validated before it replaces params.yaml.
"""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML, YAMLError

from repro import config, files

SCALES_DIR = Path("scales")


def _merge(target, changes) -> None:
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def apply(name: str, params_path: Path, scales_dir: Path = SCALES_DIR) -> config.Config:
    """Writes scale `name` into `params_path`; returns the validated configuration."""
    scale_path = scales_dir / f"{name}.yaml"
    if not scale_path.is_file():
        known = sorted(p.stem for p in scales_dir.glob("*.yaml"))
        raise config.ConfigError(f"no scale {name!r} ({scale_path} not found); scales: {', '.join(known)}")
    yaml = YAML()  # round-trip: keeps comments, order and flow style
    yaml.width = 4096  # never re-wrap a line
    if not params_path.is_file():
        raise config.ConfigError(f"{params_path} not found; run `repro scale` in the repository's root")
    try:
        params = yaml.load(params_path.read_text(encoding="utf-8"))
    except YAMLError as error:
        raise config.ConfigError(f"{params_path} is not valid YAML ({error.__class__.__name__}); restore it with "
                                 f"`git checkout {params_path}`") from None
    if not isinstance(params, dict):
        what = "empty" if params is None else "a list" if isinstance(params, list) else "a single value"
        raise config.ConfigError(f"{params_path} does not hold a mapping of parameters (it is {what}); restore it "
                                 f"with `git checkout {params_path}`")
    _merge(params, yaml.load(scale_path.read_text(encoding="utf-8")))
    with files.atomic_path(params_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.dump(params, f)
        checked = config.load(tmp)  # a broken result never replaces params.yaml
    return checked
