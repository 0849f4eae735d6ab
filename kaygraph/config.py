"""KayGraph's configuration: one typed schema, four layers, and the source of every value.

Precedence, lowest first: built-in defaults < a JSON file < ``KAYGRAPH_*`` environment variables
< :func:`configure` / :meth:`Config.set`. The file is the first that exists of: the path given to
:class:`Config`, ``$KAYGRAPH_CONFIG``, ``./kaygraph.json``, ``./.kaygraph.json``,
``~/.kaygraph/config.json``, ``/etc/kaygraph/config.json``. A file may set part of a section; the
rest keeps its defaults.

Environment variables are matched against the schema, so keys that contain underscores map
correctly: ``KAYGRAPH_LOG_LEVEL`` is ``log_level`` and ``KAYGRAPH_OBSERVABILITY_METRICS_PORT`` is
``observability.metrics_port``. Their text, stripped of surrounding whitespace, is parsed by the
key's type (``9100`` becomes an int: ASCII digits only, ports at most 65535;
``true``/``false``/``1``/``0`` a bool; ``null`` or ``none`` clears an optional value). A variable
that is set but empty is an error, never a silent null. A section variable such as
``KAYGRAPH_PERSISTENCE`` takes a JSON object.

Every value is validated where it enters: a wrong type or a value outside a key's choices raises
:class:`~kaygraph.core.exceptions.ConfigurationError` naming the key, the value and its source; a
malformed file names the file, line and column. Unknown keys are kept and warned about once.

The global configuration is built on first use (:func:`get_config`), never at ``import kaygraph``,
so a broken file cannot break importing the library.

>>> from kaygraph.config import Config
>>> cfg = Config(search=False, env={"KAYGRAPH_OBSERVABILITY_METRICS_PORT": "9100"})
>>> cfg.get("observability.metrics_port"), cfg.source_of("observability.metrics_port")
(9100, 'env KAYGRAPH_OBSERVABILITY_METRICS_PORT')
>>> cfg.get("persistence.backend"), cfg.source_of("persistence.backend")
('sqlite', 'default')
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaygraph.core.exceptions import ConfigurationError


@dataclass(frozen=True)
class Setting:
    """One known key: its type, default, allowed values and a line of documentation."""

    key: str
    kind: type  # bool, int or str
    default: Any
    doc: str
    nullable: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None

    @property
    def env_var(self) -> str:
        return env_var_for(self.key)

    def expected(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.choices:
            text = "one of " + ", ".join(repr(choice) for choice in self.choices)
        elif self.kind is bool:
            text = "true or false"
        elif self.kind is int:
            if self.minimum is not None and self.maximum is not None:
                text = f"an integer from {self.minimum} to {self.maximum}"
            elif self.minimum is not None:
                text = f"an integer >= {self.minimum}"
            else:
                text = "an integer"
        else:
            text = "a string"
        return text + (" or null" if self.nullable else "")


def env_var_for(key: str) -> str:
    """The environment variable that sets ``key``.

    >>> env_var_for("observability.metrics_port")
    'KAYGRAPH_OBSERVABILITY_METRICS_PORT'
    """
    return "KAYGRAPH_" + key.replace(".", "_").upper()


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MAX_PORT = 65535

#: Every key KayGraph and its extensions read, in display order.
SETTINGS: tuple[Setting, ...] = (
    Setting("debug", bool, False, "verbose errors and logging"),
    Setting("log_level", str, "INFO", "level of KayGraph's loggers", choices=_LOG_LEVELS),
    Setting(
        "persistence.backend", str, "sqlite", "where durable runs are stored",
        choices=("memory", "sqlite", "redis", "postgres"),
    ),
    Setting("persistence.url", str, None, "backend URL (redis://..., postgresql://...)", nullable=True),
    Setting("persistence.directory", str, ".kaygraph", "directory of the SQLite file"),
    Setting(
        "persistence.ttl", int, 86400, "seconds a finished run is kept; null keeps it forever",
        nullable=True, minimum=1,
    ),
    Setting("persistence.keep_snapshots", int, 10, "full snapshots kept per run", minimum=1),
    Setting(
        "persistence.durability", str, "normal",
        "normal survives a killed process, full survives power loss", choices=("normal", "full"),
    ),
    Setting(
        "persistence.serializer", str, "json", "checkpoint encoding; pickle runs code on load",
        choices=("json", "pickle"),
    ),
    Setting("scheduler.enabled", bool, False, "run scheduled graphs"),
    Setting(
        "scheduler.backend", str, "sqlite", "where schedules are stored",
        choices=("memory", "sqlite", "redis", "postgres"),
    ),
    Setting("scheduler.url", str, None, "store URL (redis://..., postgresql://...)", nullable=True),
    Setting("scheduler.directory", str, ".kaygraph", "directory of the SQLite file schedules.db"),
    Setting("scheduler.timezone", str, "UTC", "default timezone of cron expressions"),
    Setting("scheduler.lease", int, 30, "seconds until a killed scheduler's fires are taken over", minimum=1),
    Setting("scheduler.grace", int, 60, "seconds a fire may be late and still count as on time", minimum=0),
    Setting("scheduler.poll_interval", int, 2, "seconds between looks for other processes' work", minimum=1),
    Setting("scheduler.max_workers", int, 8, "fires one scheduler process runs at once", minimum=1),
    Setting(
        "scheduler.shutdown_timeout", int, 30, "seconds running fires get to finish at shutdown", minimum=0
    ),
    Setting("ui.enabled", bool, False, "serve the dashboard"),
    Setting("ui.host", str, "127.0.0.1", "dashboard bind address (loopback only by default)"),
    Setting("ui.port", int, 8080, "dashboard port", minimum=0, maximum=_MAX_PORT),
    Setting("ui.token", str, None, "admin token; required to serve a non-loopback address", nullable=True),
    Setting("ui.read_token", str, None, "read-only token: view runs, not start/cancel/fork", nullable=True),
    Setting("ui.store", str, None, "run store URL the dashboard reads (null: persistence.*)", nullable=True),
    Setting("ui.schedule_store", str, None, "schedule store URL (null: scheduler.*)", nullable=True),
    Setting("ui.redact", bool, True, "hide values under secret-looking keys (password, token, api_key...)"),
    Setting("ui.poll_interval_ms", int, 100, "ms between the dashboard's store polls", minimum=10),
    Setting("ui.allowed_origins", str, None, "extra origins allowed to change runs (a,b)", nullable=True),
    Setting("ui.max_value_chars", int, 2000, "JSON longer than this is shown cut", minimum=80),
    Setting(
        "distributed.executor", str, "local",
        "where batch items and remote nodes run: local (this process), process, dask or ray",
        choices=("local", "process", "dask", "ray"),
    ),
    Setting(
        "distributed.address", str, None,
        "cluster to join (tcp://host:8786 for Dask, ray://host:10001 for Ray); null starts a local one",
        nullable=True,
    ),
    Setting("distributed.workers", int, None, "worker processes of a local cluster; null: one per CPU",
            nullable=True, minimum=1),
    Setting("distributed.chunk_size", int, None, "batch items per task; null: automatic", nullable=True,
            minimum=1),
    Setting("distributed.max_in_flight", int, None, "unfinished tasks at once; null: two per worker slot",
            nullable=True, minimum=1),
    Setting("distributed.connect_timeout", int, 10, "seconds to reach a cluster before failing", minimum=1),
    Setting("distributed.share_threshold", int, 1048576,
            "bytes from which an input is sent to the cluster once, by reference; 0: never", minimum=0),
    Setting("observability.tracing_enabled", bool, False, "emit OpenTelemetry spans"),
    Setting("observability.metrics_enabled", bool, False, "serve Prometheus metrics"),
    Setting("observability.metrics_host", str, "127.0.0.1", "metrics bind address"),
    Setting("observability.metrics_port", int, 9090, "metrics port", minimum=0, maximum=_MAX_PORT),
    Setting("observability.service_name", str, "kaygraph", "OpenTelemetry service.name"),
    Setting(
        "observability.exporter", str, "none", "span exporter set up by KayGraph",
        choices=("none", "console", "otlp"),
    ),
    Setting("observability.otlp_endpoint", str, None, "OTLP/HTTP endpoint", nullable=True),
    Setting("observability.json_logs", bool, False, "structured JSON run/node logs"),
)

SCHEMA: dict[str, Setting] = {setting.key: setting for setting in SETTINGS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(key.split(".")[0] for key in SCHEMA if "." in key))

#: ``KAYGRAPH_*`` variables that are not configuration keys, so they never warn.
NON_CONFIG_ENV_VARS = frozenset(
    {"KAYGRAPH_CONFIG", "KAYGRAPH_PLUGINS", "KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD", "KAYGRAPH_REQUIRE_SERVICES"}
)
NON_CONFIG_ENV_PREFIXES = ("KAYGRAPH_TEST_",)

_ENV_TO_KEY: dict[str, str] = {env_var_for(name): name for name in (*SCHEMA, *SECTIONS)}
if len(_ENV_TO_KEY) != len(SCHEMA) + len(SECTIONS):  # pragma: no cover - guards future schema edits
    raise AssertionError("two configuration keys map to the same environment variable")

#: Files looked for, in order, when neither a path nor ``KAYGRAPH_CONFIG`` is given.
SEARCH_PATHS: tuple[str, ...] = (
    "kaygraph.json",
    ".kaygraph.json",
    "~/.kaygraph/config.json",
    "/etc/kaygraph/config.json",
)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_NULL = frozenset({"null", "none"})
#: How an integer is written in an environment variable: ASCII digits with an optional sign, so
#: full-width digits or ``9_100`` (which ``int()`` accepts) are errors rather than surprises.
_INTEGER = re.compile(r"[+-]?[0-9]+")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(token: str, message: str) -> None:
    with _warned_lock:
        if token in _warned:
            return
        _warned.add(token)
    warnings.warn(message, UserWarning, stacklevel=4)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f" Did you mean {close[0]!r}?" if close else ""


def _invalid(setting: Setting, value: Any, source: str, problem: str | None = None) -> ConfigurationError:
    detail = problem or f"expected {setting.expected()}"
    if source.startswith("env "):
        fix = f"Set {source[4:]} to a valid value or unset it."
    elif source.startswith("file "):
        fix = f"Fix it in {source[5:]}, or override it with {setting.env_var}."
    else:
        fix = "Pass a valid value."
    return ConfigurationError(
        f"Config key {setting.key!r} has value {value!r} (from {source}): {detail}. {fix}",
        key=setting.key,
        value=value,
        source=source,
    )


def _parse_text(setting: Setting, text: str, source: str) -> Any:
    """Turn an environment variable's text into a value of the key's type.

    Surrounding whitespace (a stray ``\\r`` from a Windows ``.env`` file) is dropped. An empty
    value is an error, never a silent null or empty string: ``KAYGRAPH_PERSISTENCE_TTL=`` must not
    mean "keep forever"; only ``null``/``none`` clear an optional key.
    """
    stripped = text.strip()
    lowered = stripped.lower()
    if not stripped:
        raise _empty(setting, source)
    if setting.nullable and lowered in _NULL:
        return None
    if setting.kind is bool:
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _invalid(setting, text, source, "expected true or false (also 1/0, yes/no, on/off)")
    if setting.kind is int:
        if not _INTEGER.fullmatch(stripped):
            raise _invalid(setting, text, source)
        return int(stripped, 10)
    if stripped.startswith('"'):
        import json

        try:
            decoded = json.loads(stripped)
        except ValueError:
            return stripped
        return decoded if isinstance(decoded, str) else stripped
    return stripped


def _empty(setting: Setting, source: str) -> ConfigurationError:
    """The error for a variable that is set but empty."""
    variable = source[4:] if source.startswith("env ") else setting.env_var
    default = "null" if setting.default is None else repr(setting.default)
    null_hint = "; write null to clear it" if setting.nullable else ""
    return ConfigurationError(
        f"Config key {setting.key!r} is set but empty (from {source}): expected "
        f"{setting.expected()}{null_hint}. Unset {variable} to use the default ({default}), or set "
        "it to a valid value.",
        key=setting.key,
        value="",
        source=source,
    )


def _validate(setting: Setting, value: Any, source: str) -> Any:
    """Check a typed value against the key's schema; returns it in canonical form."""
    if value is None:
        if setting.nullable:
            return None
        raise _invalid(setting, value, source)
    if setting.kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(setting, value, source)
        if setting.minimum is not None and value < setting.minimum:
            raise _invalid(setting, value, source)
        if setting.maximum is not None and value > setting.maximum:
            raise _invalid(setting, value, source)
        return value
    if not isinstance(value, setting.kind):
        raise _invalid(setting, value, source)
    if setting.choices:
        canonical = {choice.lower(): choice for choice in setting.choices}
        match = canonical.get(str(value).lower())
        if match is None:
            raise _invalid(setting, value, source)
        return match
    return value


_Layer = dict[str, tuple[Any, str]]  # key -> (value, source)


class Config:
    """The effective configuration: defaults, then a file, then the environment, then runtime.

    ``Config()`` searches the standard locations and reads ``os.environ``; pass ``config_file``
    (the spec's name; ``path=`` is accepted too) to read one file, which must exist, ``env`` to
    read another mapping, ``search=False`` to skip the search (``$KAYGRAPH_CONFIG`` still applies
    when ``env`` has it). These are the framework's settings; nodes are configured with
    ``kaygraph.Config(**settings)``, a different class.
    """

    def __init__(
        self,
        config_file: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        search: bool = True,
        path: str | os.PathLike[str] | None = None,
        **node_settings: Any,
    ) -> None:
        if node_settings:
            names = ", ".join(f"{name}=" for name in node_settings)
            raise TypeError(
                f"kaygraph.config.Config() got {names}: it loads KayGraph's own settings (config_file=, "
                f"env=, search=). Settings for your nodes go in kaygraph.Config({names}...), passed as "
                "config= to a node or graph."
            )
        if path is not None:
            if config_file is not None:
                raise TypeError(
                    "kaygraph.config.Config() got both config_file= and path= (the same setting); "
                    "pass only config_file="
                )
            config_file = path
        self._lock = threading.RLock()
        self._path = Path(config_file) if config_file is not None else None
        self._env = env
        self._search = search
        self._file: Path | None = None
        self._searched: list[str] = []
        self._file_layer: _Layer = {}
        self._env_layer: _Layer = {}
        self._runtime: _Layer = {}
        self.reload()

    # -- loading --------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the file and the environment again; values set at runtime stay on top."""
        env = os.environ if self._env is None else self._env
        file, searched = self._find_file(env)
        file_layer = self._flatten(_read_json(file), f"file {file}") if file is not None else {}
        env_layer = self._read_env(env)
        with self._lock:
            self._file, self._searched = file, searched
            self._file_layer, self._env_layer = file_layer, env_layer

    def _find_file(self, env: Mapping[str, str]) -> tuple[Path | None, list[str]]:
        if self._path is not None:
            if not self._path.is_file():
                raise ConfigurationError(
                    f"KayGraph settings file {self._path} does not exist (given as "
                    "kaygraph.config.Config(config_file=...)); pass the path of a JSON file.",
                    source=f"file {self._path}",
                )
            return self._path, [str(self._path)]
        explicit = env.get("KAYGRAPH_CONFIG")
        if explicit:
            path = Path(explicit).expanduser()
            if not path.is_file():
                raise ConfigurationError(
                    f"KAYGRAPH_CONFIG={explicit!r} does not name an existing file; fix the path or "
                    "unset the variable.",
                    key="KAYGRAPH_CONFIG",
                    value=explicit,
                    source="env KAYGRAPH_CONFIG",
                )
            return path, [str(path)]
        if not self._search:
            return None, []
        searched = []
        for location in SEARCH_PATHS:
            try:
                path = Path(location).expanduser()
            except RuntimeError:  # no home directory
                continue
            path = path.absolute()  # sources name the real file, whatever the working directory
            searched.append(str(path))
            if path.is_file():
                return path, searched
        return None, searched

    def _flatten(self, data: Mapping[str, Any], source: str) -> _Layer:
        """Validate a nested mapping (file or section variable) into flat ``key -> (value, source)``."""
        layer: _Layer = {}
        for top, value in data.items():
            if top in SECTIONS:
                if not isinstance(value, Mapping):
                    example = next(key for key in SCHEMA if key.startswith(top + ".")).split(".")[1]
                    raise ConfigurationError(
                        f"Config key {top!r} has value {value!r} (from {source}): expected an object "
                        f"of {top} settings, such as {{{example!r}: ...}}.",
                        key=top,
                        value=value,
                        source=source,
                    )
                for sub, sub_value in value.items():
                    self._store(layer, f"{top}.{sub}", sub_value, source)
            else:
                self._store(layer, str(top), value, source)
        return layer

    @staticmethod
    def _store(layer: _Layer, key: str, value: Any, source: str, *, text: bool = False) -> None:
        setting = SCHEMA.get(key)
        if setting is None:
            _warn_unknown(key, source)
            layer[key] = (value, source)
            return
        parsed = _parse_text(setting, value, source) if text else value
        layer[key] = (_validate(setting, parsed, source), source)

    def _read_env(self, env: Mapping[str, str]) -> _Layer:
        layer: _Layer = {}
        for name in sorted(env):
            if not name.startswith("KAYGRAPH_") or name in NON_CONFIG_ENV_VARS:
                continue
            if name.startswith(NON_CONFIG_ENV_PREFIXES):
                continue
            source = f"env {name}"
            key = _ENV_TO_KEY.get(name)
            if key is None:
                _warn_once(
                    f"env:{name}",
                    f"Environment variable {name} is not a KayGraph setting and is ignored."
                    f"{_suggest(name, list(_ENV_TO_KEY))}",
                )
                continue
            if key in SECTIONS:
                import json

                try:
                    section = json.loads(env[name])
                except ValueError as exc:
                    raise ConfigurationError(
                        f"{name} must hold a JSON object of {key} settings, got {env[name]!r} ({exc}).",
                        key=key,
                        value=env[name],
                        source=source,
                    ) from None
                layer.update(self._flatten({key: section}, source))
            else:
                self._store(layer, key, env[name], source, text=True)
        return layer

    # -- reading --------------------------------------------------------------------------------

    def _entry(self, key: str) -> tuple[Any, str] | None:
        with self._lock:
            for layer in (self._runtime, self._env_layer, self._file_layer):
                if key in layer:
                    return layer[key]
        setting = SCHEMA.get(key)
        return (setting.default, "default") if setting is not None else None

    def _keys(self) -> list[str]:
        with self._lock:
            extra = set(self._file_layer) | set(self._env_layer) | set(self._runtime)
        return list(SCHEMA) + sorted(extra - set(SCHEMA))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (dotted: ``"persistence.backend"``); a section name gives a dict.

        ``default`` is returned only for keys nobody defined.
        """
        entry = self._entry(key)
        if entry is not None:
            return entry[0]
        section = self.section(key)
        if section:
            return section
        # inside an unknown key that holds an object: get("my_plugin.option")
        top, _, rest = key.partition(".")
        value = self._entry(top)
        current = value[0] if value is not None else None
        for part in rest.split(".") if rest else ():
            if not isinstance(current, Mapping) or part not in current:
                return default
            current = current[part]
        return default if value is None or not rest else current

    def section(self, name: str) -> dict[str, Any]:
        """The keys under ``name`` as a dict without the prefix: ``section("ui")["port"]``."""
        prefix = name + "."
        return {key[len(prefix):]: self.get(key) for key in self._keys() if key.startswith(prefix)}

    def source_of(self, key: str) -> str:
        """Where the value of ``key`` came from: ``"default"``, ``"file /path"``, ``"env VAR"``,
        ``"configure()"`` or ``"set()"``."""
        entry = self._entry(key)
        if entry is None:
            raise ConfigurationError(
                f"Unknown config key {key!r}.{_suggest(key, self._keys())} Run `kaygraph config` "
                "to list the keys.",
                key=key,
            )
        return entry[1]

    def items(self) -> list[tuple[str, Any, str]]:
        """Every key with its value and source, known keys first (for ``kaygraph config``)."""
        result = []
        for key in self._keys():
            entry = self._entry(key)
            assert entry is not None
            result.append((key, entry[0], entry[1]))
        return result

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as nested dicts, one per section."""
        nested: dict[str, Any] = {}
        for key, value, _ in self.items():
            top, dot, sub = key.partition(".")
            if dot:
                nested.setdefault(top, {})[sub] = value
            else:
                nested[key] = value
        return nested

    @property
    def file(self) -> Path | None:
        """The file that was read, or None."""
        return self._file

    @property
    def searched(self) -> list[str]:
        """The paths that were looked at for a file, in order."""
        return list(self._searched)

    @property
    def debug(self) -> bool:
        return bool(self.get("debug"))

    @property
    def log_level(self) -> str:
        return str(self.get("log_level"))

    # -- writing --------------------------------------------------------------------------------

    def set(self, key: str, value: Any, *, _source: str = "set()") -> None:
        """Override ``key`` at runtime (highest precedence); a section name takes a dict."""
        self.configure({key: value}, _source=_source)

    def configure(
        self, settings: Mapping[str, Any] | None = None, /, *, _source: str = "configure()", **kwargs: Any
    ) -> Config:
        """Override several keys at once: ``configure(debug=True, persistence={"backend": "redis"})``
        or with dotted keys ``configure({"persistence.backend": "redis"})``.

        Everything is validated before anything changes, so a bad value leaves the config intact.
        """
        merged: dict[str, Any] = {**(settings or {}), **kwargs}
        layer: _Layer = {}
        for key, value in merged.items():
            if key in SECTIONS:
                layer.update(self._flatten({key: value}, _source))
            else:
                self._store(layer, key, value, _source)
        with self._lock:
            self._runtime.update(layer)
        return self

    def reset(self, key: str | None = None) -> None:
        """Drop the runtime override of ``key`` (or of every key), revealing env/file/default again.

        A section name (``reset("ui")``) drops every key of the section, as ``set("ui", {...})``
        set them.
        """
        with self._lock:
            if key is None:
                self._runtime.clear()
                return
            prefix = key + "."
            for name in [name for name in self._runtime if name == key or name.startswith(prefix)]:
                del self._runtime[name]

    def __repr__(self) -> str:
        return f"<kaygraph.config.Config file={str(self._file) if self._file else None!r}>"


def _warn_unknown(key: str, source: str) -> None:
    _warn_once(
        f"key:{key}",
        f"Unknown config key {key!r} (from {source}); KayGraph keeps it but does not use it."
        f"{_suggest(key, [*SCHEMA, *SECTIONS])}",
    )


def _read_json(path: Path) -> dict[str, Any]:
    import json

    source = f"file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"Cannot read config file {path}: {exc}. Fix its permissions or encoding (UTF-8), or point "
            "KAYGRAPH_CONFIG at another file.",
            source=source,
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in config file: {exc.msg}. Fix the file "
            "or point KAYGRAPH_CONFIG at another one.",
            source=source,
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"Config file {path} must contain a JSON object such as {{\"log_level\": \"DEBUG\"}}, "
            f"got {type(data).__name__}.",
            value=data,
            source=source,
        )
    return data


_global: Config | None = None
_global_lock = threading.Lock()


def get_config() -> Config:
    """The process-wide configuration, loaded on first call (a broken file raises here, not at import)."""
    global _global
    config = _global
    if config is None:
        with _global_lock:
            if _global is None:
                _global = Config()
            config = _global
    return config


def configure(settings: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Config:
    """Override keys of the global configuration at runtime; see :meth:`Config.configure`."""
    return get_config().configure(settings, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "config":  # the spec's module-level instance, built on first access
        return get_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _reset_for_tests() -> None:
    """Forget the global configuration and the warnings already given (tests call this)."""
    global _global
    with _global_lock:
        _global = None
    with _warned_lock:
        _warned.clear()


__all__ = [
    "SCHEMA",
    "SEARCH_PATHS",
    "SETTINGS",
    "Config",
    "Setting",
    "configure",
    "env_var_for",
    "get_config",
]
