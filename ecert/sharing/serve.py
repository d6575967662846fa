"""Serving a registry's sharing service on uvicorn, with one or several worker processes
(``ecert serve``; the ``server`` extra).

Workers are stateless: each opens the registry itself (:func:`open_service`), as the
``service`` operator, and shares nothing with the others but the database (nonces, use
records, consent). Several workers need the registry's database to be PostgreSQL in
production (SQLite serializes their writes). uvicorn starts each worker in a fresh
process (``spawn``), importing :func:`worker_app`, which reads the settings from the
environment variable :data:`SETTINGS_ENV` (JSON, no secrets) and the passphrases from
``ECERT_PASSPHRASE`` and ``ECERT_OPERATOR_PASSPHRASE``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from ecert._clock import Clock
from ecert.errors import PermissionDenied
from ecert.models import KeyRole, KeyStatus, Role
from ecert.registry import OperatorCredential, Registry
from ecert.sharing.app import ASGIApp, Limits, Message, Receive, Scope, Send
from ecert.sharing.backend import RegistryBackend, registry_app
from ecert.sharing.server import protocol_class, uvicorn_config
from ecert.verify import Verifier

log = logging.getLogger("ecert.sharing")

#: The environment variable the parent process hands the workers their settings in.
SETTINGS_ENV = "ECERT_SERVE_SETTINGS"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Where the registry is, who acts, and how the service is reached (no secrets)."""

    home: str
    database_url: str | None
    operator: str
    base_url: str  #: the public base URL requests are signed for
    #: A published bundle directory of the home region to read its trust list from
    #: (default: fetched from the registry's own base URL).
    bundle: str | None = None
    #: Seconds after which the trust lists are read again.
    trust_max_age: float = 60.0

    def to_env(self) -> str:
        """As :data:`SETTINGS_ENV` holds it."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str) -> ServiceSettings:
        """From :data:`SETTINGS_ENV`."""
        return cls(**json.loads(text))


def open_service(settings: ServiceSettings, *, passphrase: str | None,
                 operator_passphrase: str | None, clock: Clock | None = None) -> Registry:
    """The registry, opened as ``settings.operator``, who must hold the ``service`` role;
    the operator's key and the registry's sharing key are unlocked now, so that a wrong
    passphrase fails here and not at the first request."""
    registry = Registry.open(
        settings.home, database_url=settings.database_url, passphrase=passphrase,
        operator=OperatorCredential(settings.operator, passphrase=operator_passphrase),
        clock=clock)
    try:
        operator = registry.whoami()
        if Role.SERVICE not in operator.roles:
            raise PermissionDenied(f"operator {operator.name} does not hold the service role: "
                                   "only the service operator serves requests")
        sharing = [k for k in registry.keys(agency_code=None)
                   if k.role is KeyRole.SHARING and k.status is KeyStatus.ACTIVE]
        if sharing:
            registry.keystore.signer(sharing[0].kid)  # unlocks the key store
        return registry
    except BaseException:
        registry.close()
        raise


def verifier_factory(registry: Registry, settings: ServiceSettings
                     ) -> Callable[[], Verifier]:
    """How the service reads its trust lists afresh (see ``ServiceSettings.bundle``)."""
    anchor, clock, bundle = registry.anchor(), registry.clock, settings.bundle
    if bundle is not None:
        return lambda: Verifier.from_bundle(Path(bundle), anchor=anchor, clock=clock)
    return lambda: Verifier.from_anchor(anchor, clock=clock)


def service_app(registry: Registry, settings: ServiceSettings,
                limits: Limits | None = None) -> ASGIApp:
    """The service of ``registry`` with a lifespan: at shutdown the backend writes what it
    still holds (the summaries of refusals not recorded one by one)."""
    app, backend = registry_app(registry, base_url=settings.base_url,
                                make_verifier=verifier_factory(registry, settings),
                                limits=limits, trust_max_age=settings.trust_max_age)
    return with_lifespan(app, backend, registry)


def with_lifespan(app: ASGIApp, backend: RegistryBackend, registry: Registry) -> ASGIApp:
    """``app``, answering the ASGI lifespan: at shutdown ``backend.close()`` and the
    registry's connections are released."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    backend.close()
                    registry.close()
                except Exception:  # the worker stops all the same; say why in its log
                    log.exception("closing the sharing service")
                await send({"type": "lifespan.shutdown.complete"})
                return

    return wrapped


def worker_app() -> ASGIApp:
    """The application of one worker process (uvicorn's factory, ``--workers`` > 1)."""
    settings = ServiceSettings.from_env(os.environ[SETTINGS_ENV])
    registry = open_service(settings, passphrase=os.environ.get("ECERT_PASSPHRASE"),
                            operator_passphrase=os.environ.get("ECERT_OPERATOR_PASSPHRASE"))
    return service_app(registry, settings)


class _WorkerSockets(list[socket.socket]):
    """The listening socket uvicorn hands a worker process, made in that worker.

    uvicorn's workers share one listening socket, and a worker woken by a new connection
    accepts every connection waiting (asyncio accepts up to the backlog at once): a
    burst of keep-alive connections, as a load balancer or a busy client opens, lands
    on one worker while the others idle. Where the system has ``SO_REUSEPORT`` (Linux),
    each worker instead listens on a socket of its own on the same port, and the kernel
    spreads new connections over them. This list pickles (uvicorn sends the sockets to
    each worker it spawns or restarts) as the instruction to open that socket there.
    """

    def __init__(self, host: str, port: int, backlog: int) -> None:
        super().__init__()
        self.host, self.port, self.backlog = host, port, backlog

    def __reduce__(self) -> tuple[Any, tuple[str, int, int]]:
        return _listen_reusing_port, (self.host, self.port, self.backlog)


def _reusing_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` that others of this user may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _listen_reusing_port(host: str, port: int, backlog: int) -> list[socket.socket]:
    """In a worker: its own listening socket on the service's port."""
    sock = _reusing_port(host, port)
    sock.listen(backlog)
    sock.set_inheritable(True)
    return [sock]


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, remembering the signal that stopped it."""

    stopped_by: int | None = None

    def handle_int(self) -> None:
        self.stopped_by = signal.SIGINT
        super().handle_int()

    def handle_term(self) -> None:
        self.stopped_by = signal.SIGTERM
        super().handle_term()


def serve(settings: ServiceSettings, *, host: str, port: int, workers: int,
          passphrase: str | None, operator_passphrase: str | None,
          on_started: Callable[[], None] | None = None, **options: Any) -> int | None:
    """Serve until SIGTERM or Ctrl-C; the signal that stopped it (None: it stopped by
    itself). The registry is opened here first, so that a wrong setting or passphrase
    fails at once, in this process, whatever the number of workers."""
    registry = open_service(settings, passphrase=passphrase,
                            operator_passphrase=operator_passphrase)
    if workers <= 1:
        try:
            app = service_app(registry, settings)
        except BaseException:
            registry.close()
            raise
        config = uvicorn_config(app, host=host, port=port, **options)
        config.lifespan = "on"
        server = uvicorn.Server(config)
        received: list[int] = []
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:  # uvicorn raises the signal again once it has stopped
            signal.signal(s, lambda signum, _frame: received.append(signum))
        try:
            sock = config.bind_socket()  # a port in use fails here, before "serving"
            if on_started is not None:
                on_started()
            server.run(sockets=[sock])
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return received[0] if received else None
    try:
        verifier_factory(registry, settings)()  # the trust list can be read: fail here if not
    finally:
        registry.close()  # each worker opens its own
    os.environ[SETTINGS_ENV] = settings.to_env()
    for name, value in (("ECERT_PASSPHRASE", passphrase),
                        ("ECERT_OPERATOR_PASSPHRASE", operator_passphrase)):
        if value is not None:
            os.environ[name] = value
    config = uvicorn.Config("ecert.sharing.serve:worker_app", factory=True, host=host,
                            port=port, workers=workers, http=protocol_class(),
                            lifespan="on", **{"log_level": "warning",
                                              "h11_max_incomplete_event_size":
                                              Limits().max_header_bytes + 1024,
                                              "limit_concurrency": Limits().max_connections,
                                              **options})
    if not hasattr(socket, "SO_REUSEPORT") or config.uds or config.fd is not None:
        supervisor = _Supervisor(config, sockets=[config.bind_socket()])
        if on_started is not None:
            on_started()
        supervisor.run()
        return supervisor.stopped_by
    # The port is taken here (a port in use fails now, before "serving"; port 0 picks
    # one): bound but not listening, this socket gets no connections, the workers' do.
    with _reusing_port(host, port) as held:
        supervisor = _Supervisor(config, sockets=_WorkerSockets(
            host, held.getsockname()[1], config.backlog))
        if on_started is not None:
            on_started()
        supervisor.run()
    return supervisor.stopped_by


__all__ = ["SETTINGS_ENV", "ServiceSettings", "open_service", "serve", "service_app",
           "verifier_factory", "with_lifespan", "worker_app"]
