"""Run the ``openstack`` CLI in-process and name things uniquely."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import uuid
from dataclasses import dataclass
from typing import Any


def _client_per_shell(descriptor: Any, instance: Any, owner: Any) -> Any:
    """osc-lib caches each service client on the class, for the whole process;
    one process running many shells needs one client per shell (upstream's own
    functional tests patch this the same way)."""
    if instance is None:
        return descriptor
    cache = instance.__dict__.setdefault("_clients_by_descriptor", {})
    if id(descriptor) not in cache:
        cache[id(descriptor)] = descriptor.factory(instance)
    return cache[id(descriptor)]


def patch_client_cache() -> None:
    """Make osc-lib build fresh clients for every in-process shell."""
    from osc_lib import clientmanager

    clientmanager.ClientCache.__get__ = _client_per_shell  # type: ignore[method-assign]


class CommandFailed(AssertionError):
    """An ``openstack`` command exited non-zero."""


@dataclass
class OpenStackCLI:
    """Runs ``openstack`` commands in-process (the same code as the script)."""

    auth_args: list[str]

    def run(self, command: str, version: str | None = None) -> tuple[int, str, str]:
        """Run one command; return (exit code, stdout, stderr)."""
        from openstackclient import shell

        argv = list(self.auth_args)
        if version is not None:
            argv += ["--os-placement-api-version", version]
        argv += shlex.split(command)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = shell.OpenStackShell().run(argv)
            except SystemExit as exc:  # argparse exits on usage errors
                code = exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue(), err.getvalue()

    def __call__(self, command: str, version: str | None = None) -> Any:
        """Run a command with ``-f json`` and return its parsed output."""
        code, out, err = self.run(command + " -f json", version)
        if code:
            raise CommandFailed(f"openstack {command} (version {version}) -> {code}: {err}")
        return json.loads(out)

    def ok(self, command: str, version: str | None = None) -> str:
        """Run a command that prints nothing useful; fail on a non-zero exit."""
        code, out, err = self.run(command, version)
        if code:
            raise CommandFailed(f"openstack {command} (version {version}) -> {code}: {err}")
        return out

    def fails(self, command: str, version: str | None = None) -> str:
        """Run a command that must fail; return its error output."""
        code, out, err = self.run(command, version)
        assert code != 0, f"openstack {command} should have failed; printed {out!r}"
        return err


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def custom(prefix: str) -> str:
    """A unique CUSTOM_ resource class or trait name."""
    return f"CUSTOM_{prefix.upper()}_{uuid.uuid4().hex[:10].upper()}"
