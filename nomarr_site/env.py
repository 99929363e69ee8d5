"""Typed reads of Nomarr's environment variables, for settings.py.

Every knob is an environment variable with a default. A value that does not parse
is refused at start with ImproperlyConfigured naming the variable and quoting what
was given ("NOMARR_PORT must be an integer, got 'abc'"), never a traceback from deep
inside Django and never a silent default: `NOMARR_HTTPS=ture` stops the server
instead of quietly serving plain HTTP. An unset or empty variable takes the default.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class SettingError(ImproperlyConfigured):
    """A variable Nomarr cannot use; the message names it and says what it wants."""


def _raw(name: str) -> str | None:
    """The variable's value, stripped; None when unset or empty."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _refuse(name: str, wanted: str, value: str) -> SettingError:
    return SettingError(f"{name} must be {wanted}, got {value!r}")


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise _refuse(name, "true or false (also 1/0, yes/no, on/off)", value)


def _in_range(name: str, number, value: str, minimum, maximum):
    if minimum is not None and number < minimum:
        raise _refuse(name, f"at least {minimum}", value)
    if maximum is not None and number > maximum:
        raise _refuse(name, f"at most {maximum}", value)
    return number


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _refuse(name, "an integer", value) from None
    return _in_range(name, number, value, minimum, maximum)


def env_float(
    name: str, default: float, minimum: float | None = None, maximum: float | None = None
) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _refuse(name, "a number", value) from None
    if not math.isfinite(number):
        raise _refuse(name, "a finite number", value)
    return _in_range(name, number, value, minimum, maximum)


def env_choice(name: str, default: str, choices: list[str]) -> str:
    value = _raw(name)
    if value is None:
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise _refuse(name, "one of " + ", ".join(choices), value)


def env_list(name: str, default: list[str], sep: str = ",") -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(sep) if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser().resolve() if value else default


def env_pairs(name: str, sep: str = ",") -> list[tuple[str, str]]:
    """`a=b,c=d` as [("a", "b"), ("c", "d")]; an item without `=` is refused."""
    pairs = []
    for item in env_list(name, [], sep):
        left, eq, right = item.partition("=")
        if not eq or not left.strip() or not right.strip():
            raise _refuse(name, "pairs like /lidarr/path=/nomarr/path separated by ','", item)
        pairs.append((left.strip(), right.strip()))
    return pairs


def writable_dir(name: str, path: Path) -> Path:
    """Create the folder a variable names (or defaults to) and make sure we can write there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(f"{name}: cannot create {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SettingError(
            f"{name}: {path} is not writable by uid {os.getuid()}; "
            "give that user the folder (in Docker: PUID/PGID or `user:`)"
        )
    return path


def secret_key_file(path: Path) -> str:
    """The installation's own secret key, kept in `path` (mode 0600).

    Created on first start and never overwritten: the key is written to a temporary
    file that is then linked into place, so two processes starting at once (the web
    server and the workers) end up with the same key and nobody reads half of one."""
    if not path.exists():
        from django.utils.crypto import get_random_string

        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(get_random_string(64))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            temp.unlink(missing_ok=True)
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        key = path.read_text().strip()
    except OSError as exc:
        raise SettingError(f"cannot read the secret key {path}: {exc.strerror}") from None
    if len(key) < 32:
        raise SettingError(
            f"the secret key in {path} is too short ({len(key)} characters); "
            "delete the file to have a new one made (everyone is logged out)"
        )
    return key
