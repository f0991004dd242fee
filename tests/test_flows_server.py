"""The Prefect server of ``dgnn serve``: its UI reaches its API on any port, and a port whose
last connection is in TIME_WAIT is taken, not skipped."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from adapters.prefect.server import free_port, prefect_server


def _time_wait_port() -> int:
    """A loopback port with no listener whose accepted connection is in TIME_WAIT (the side that
    closes first keeps it there for a minute), as after a server on it stopped."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its (port, peer) pair enters TIME_WAIT
        client.recv(1)
        client.close()
    return port


def test_free_port_takes_a_preferred_port_in_time_wait():
    port = _time_wait_port()
    with socket.socket() as plain:  # what the probe used to do: refused while TIME_WAIT lasts
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert free_port(port) == port


@pytest.mark.slow
def test_ui_settings_name_the_port_the_server_really_has(tmp_path, monkeypatch):
    """`dgnn serve --prefect-port N` (N != 4200, or the fallback to a free port): the UI reads its
    API address from /ui-settings."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / ".prefect"))
    monkeypatch.delenv("PREFECT_UI_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_UI_API_URL", raising=False)
    port = free_port()
    assert port != 4200
    with prefect_server(port, timeout=180) as api:
        assert api == f"http://127.0.0.1:{port}/api"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=30) as response:
            settings = json.loads(response.read())
    assert settings["api_url"] == api


def test_ui_on_a_busy_port_fails_with_one_line_before_starting(tmp_path):
    """`dgnn ui --port P` where something listens on P: status 2 and one line naming the port,
    not a banner and uvicorn's "address already in use" then status 0."""
    import os
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "cli.main", "ui", "--port", str(port)], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120,
                              env=os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: port {port} on 127.0.0.1 is in use (another server?): pass --port with a free " \
                          "one, or stop what listens there\n"
