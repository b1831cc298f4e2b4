"""Configuration: YAML files validated at start-up into frozen dataclasses.

A configuration schema is a frozen dataclass whose fields are declared with
:func:`setting`; the dataclass defaults are the embedded defaults, and the YAML files in
``configs/`` restate them for people to edit. :func:`load_config` merges, in order of
increasing precedence, the defaults, one YAML file, ``NEUROCLIP_<NAME>__<KEY>__<SUBKEY>``
environment variables and explicit overrides (the CLI's flags), then checks every value
against its type and bounds. The first wrong value raises :class:`~contract.errors.ConfigError`
naming the key, what is allowed, what was found and where it came from, before anything
starts.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``pathlib.Path``,
``typing.Literal[...]``, ``tuple[T, ...]``, nested schema dataclasses and ``T | None``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from contract.errors import ConfigError

T = TypeVar("T")

ENV_PREFIX = "NEUROCLIP_"
_DEFAULT_SOURCE = "the embedded defaults"


class InvalidSettingError(Exception):
    """Raised by a schema's ``check()`` for a cross-field rule; the loader adds the source."""

    def __init__(self, key: str, expected: str, found: object):
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(f"{key}: expected {expected}, got {found!r}")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    doc: str = "",
    secret: bool = False,
) -> Any:
    """Declare a configuration field with optional numeric bounds and a one-line help text.

    A ``secret`` field (a password) is taken from the environment or the command line only:
    a configuration file that sets it is refused, since such files get copied and committed.
    """
    metadata = {"ge": ge, "gt": gt, "le": le, "lt": lt, "doc": doc, "secret": secret}
    if isinstance(default, (list, dict, set)):
        raise TypeError("setting() defaults must be immutable: use a tuple")
    return dataclasses.field(default=default, metadata=metadata)


def load_config(
    schema: type[T],
    path: str | Path | None = None,
    *,
    name: str,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    layers: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
) -> T:
    """Build a frozen configuration object of type ``schema``.

    Parameters
    ----------
    schema
        A frozen dataclass declared with :func:`setting` fields.
    path
        A YAML file whose mapping mirrors the schema; ``None`` uses the defaults only.
    name
        The configuration's name, used for environment variables
        (``NEUROCLIP_<NAME>__<KEY>``) and in messages.
    overrides
        Dotted keys to values, applied last (the CLI's explicit flags).
    environ
        The environment to read overrides from; ``os.environ`` when ``None``.
    layers
        ``(source, mapping)`` pairs that stand for the file's contents, in order of
        increasing precedence, instead of reading ``path`` (which still names the file in
        messages): a rooms file's shared keys, then one room's. Secrets are refused in
        every layer as in a file.
    """
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if layers is None:
        layers = [] if path is None else [(str(path), read_yaml(Path(path)))]
    for source, data in layers:
        _overlay(merged, sources, data, source, prefix="")
    env = os.environ if environ is None else environ
    env_prefix = f"{ENV_PREFIX}{name.upper()}__"
    for var, raw in sorted(env.items()):
        if var.startswith(env_prefix):
            dotted = ".".join(part.lower() for part in var[len(env_prefix) :].split("__"))
            _set_dotted(merged, dotted, _parse_env_value(raw))
            sources[dotted] = f"environment variable {var}"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(merged, dotted, value)
            sources[dotted] = "the command line"
    context = _Context(
        name=name,
        sources=sources,
        file=None if path is None else str(path),
        file_sources=frozenset(source for source, _ in layers),
    )
    return _build(schema, merged, prefix="", context=context)


def from_mapping(schema: type[T], data: Mapping[str, Any], *, name: str, source: str) -> T:
    """Validate a nested mapping (e.g. a bundle's stored parameters) into ``schema``."""
    sources: dict[str, str] = {}
    _overlay({}, sources, data, source, prefix="")
    return _build(
        schema, data, prefix="", context=_Context(name=name, sources=sources, file=source)
    )


def env_var_for(name: str, dotted_key: str) -> str:
    """The environment variable that overrides ``dotted_key`` of configuration ``name``."""
    return ENV_PREFIX + name.upper() + "__" + "__".join(p.upper() for p in dotted_key.split("."))


def as_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-serialisable dictionary of a configuration object."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return convert(config)


# --------------------------------------------------------------------------- internals


@dataclasses.dataclass(frozen=True)
class _Context:
    name: str
    sources: dict[str, str]
    file: str | None
    file_sources: frozenset[str] = frozenset()
    """Sources that are (parts of) files: secrets are refused there."""

    def source_of(self, key: str) -> str:
        probe = key
        while probe:
            if probe in self.sources:
                return self.sources[probe]
            probe = probe.rpartition(".")[0]
        return self.file or _DEFAULT_SOURCE

    def fix_for(self, key: str) -> str:
        where = f"in {self.file}" if self.file else "in the YAML file passed with --config"
        return f"set {key} {where}, or with {env_var_for(self.name, key)}."


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping a configuration file holds, or a :class:`ConfigError` saying what is
    wrong with the file (missing, not YAML, not a mapping)."""
    if not path.is_file():
        raise ConfigError(
            f"Configuration file {path} does not exist.",
            key="<file>",
            fix="pass an existing YAML file with --config, or omit it to use the defaults.",
            path=path,
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"Configuration file {path} is not valid YAML: {exc}",
            key="<file>",
            fix="correct the YAML syntax at the position given above.",
            path=path,
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Configuration file {path} must hold a mapping of keys to values, "
            f"found a {type(data).__name__}.",
            key="<file>",
            fix="write the file as 'key: value' lines, as in the files under configs/.",
            path=path,
        )
    return data


def _overlay(
    merged: dict[str, Any],
    sources: dict[str, str],
    data: Mapping[str, Any],
    source: str,
    prefix: str,
) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _overlay(merged, sources, value, source, prefix=f"{dotted}.")
        else:
            _set_dotted(merged, dotted, value)
            sources[dotted] = source


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _parse_env_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _build(schema: type[T], data: Mapping[str, Any], *, prefix: str, context: _Context) -> T:
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(schema)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(
            f"Unknown configuration key '{key}' in {context.source_of(key)}: "
            f"allowed keys{' under ' + prefix.rstrip('.') if prefix else ''} are "
            f"{', '.join(sorted(fields))}.",
            key=key,
            fix="remove the key or correct its spelling.",
            path=context.file,
        )
    values: dict[str, Any] = {}
    for fname, field in fields.items():
        key = f"{prefix}{fname}"
        hint = hints[fname]
        if dataclasses.is_dataclass(hint) and dataclasses.is_dataclass(field.default):
            # a nested default instance (not only the class defaults) is the base of its keys
            given = data.get(fname, {})
            merged = _merged(as_dict(field.default), given) if isinstance(given, Mapping) else given
            values[fname] = _coerce(hint, merged, key, field.metadata, context)
        elif fname in data:
            if field.metadata.get("secret") and data[fname] is not None:
                _refuse_secret_in_file(key, context)
            values[fname] = _coerce(hint, data[fname], key, field.metadata, context)
        elif dataclasses.is_dataclass(hint):
            values[fname] = _build(hint, {}, prefix=f"{key}.", context=context)
        elif field.default is dataclasses.MISSING:
            raise ConfigError(
                f"Missing configuration key '{key}': it has no default and "
                f"{context.file or 'no configuration file'} does not set it.",
                key=key,
                fix=context.fix_for(key),
                path=context.file,
            )
    instance = schema(**values)
    check = getattr(instance, "check", None)
    if check is not None:
        try:
            check()
        except InvalidSettingError as exc:
            key = f"{prefix}{exc.key}"
            raise _invalid(key, exc.expected, exc.found, context) from None
    return instance


def _merged(base: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in given.items():
        out[k] = (
            _merged(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, Mapping) else v
        )
    return out


def _refuse_secret_in_file(key: str, context: _Context) -> None:
    source = context.source_of(key)
    if source in context.file_sources or (context.file is not None and source == context.file):
        raise ConfigError(
            f"'{key}' is set in {context.file}: secrets are never read from configuration "
            "files (the value is not shown).",
            key=key,
            fix=f"remove it from the file and set {env_var_for(context.name, key)} or "
            f"{key}_file instead.",
            path=context.file,
        )


def _invalid(key: str, expected: str, found: Any, context: _Context) -> ConfigError:
    return ConfigError(
        f"Invalid value for '{key}' from {context.source_of(key)}: expected {expected}, "
        f"got {found!r}.",
        key=key,
        fix=context.fix_for(key),
        path=context.file,
    )


def _coerce(hint: Any, value: Any, key: str, meta: Mapping[str, Any], context: _Context) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and type(None) in args:
            return None
        return _coerce(options[0], value, key, meta, context)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise _invalid(key, "a mapping of sub-keys", value, context)
        return _build(hint, value, prefix=f"{key}.", context=context)
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise _invalid(key, f"one of {allowed}", value, context)
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise _invalid(key, "a list", value, context)
        item_hint = args[0]
        return tuple(
            _coerce(item_hint, v, f"{key}[{i}]", meta, context) for i, v in enumerate(value)
        )
    if hint is bool:
        if not isinstance(value, bool):
            raise _invalid(key, "true or false", value, context)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(key, f"an integer{_bounds_text(meta)}", value, context)
        _check_bounds(value, key, meta, context, "an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(key, f"a number{_bounds_text(meta)}", value, context)
        _check_bounds(float(value), key, meta, context, "a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise _invalid(key, "a non-empty string", value, context)
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise _invalid(key, "a file or folder path", value, context)
        return Path(value)
    raise TypeError(f"unsupported configuration type {hint!r} for {key}")


def _bounds_text(meta: Mapping[str, Any]) -> str:
    parts = []
    for name, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta.get(name) is not None:
            parts.append(f"{symbol} {meta[name]:g}")
    return (" " + " and ".join(parts)) if parts else ""


def _check_bounds(
    value: float, key: str, meta: Mapping[str, Any], context: _Context, kind: str
) -> None:
    ok = (
        value == value  # rejects NaN
        and (meta.get("gt") is None or value > meta["gt"])
        and (meta.get("ge") is None or value >= meta["ge"])
        and (meta.get("lt") is None or value < meta["lt"])
        and (meta.get("le") is None or value <= meta["le"])
    )
    if not ok:
        raise _invalid(key, f"{kind}{_bounds_text(meta)}", value, context)


def read_secret(value: str | None, path: Path | None, *, key: str, env_var: str) -> str | None:
    """A secret given inline (from the environment, preferably) or in a file, or None.

    ``key`` is the dotted key of the file setting and ``env_var`` the variable that can
    hold the secret itself; both name the fix when the file cannot be read. The secret is
    never put into the message.
    """
    if value is not None:
        return value
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {key} {path}: {exc.strerror or exc}.",
            key=key,
            fix=f"point {key} at a readable file, or set {env_var}.",
        ) from None
