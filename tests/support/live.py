"""A real LNbits server process with Daznode loaded (for browser, restart and lease tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveLnbits:
    """`lnbits` started in its own process group, so stop() ends it and its worker child."""

    def __init__(
        self,
        data_folder: Path,
        *,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
    ):
        self.data_folder = data_folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "LNBITS_DATABASE_URL"}
        env.update(
            LNBITS_DATA_FOLDER=str(data_folder),
            AUTH_HTTPS_ONLY="false",
            LNBITS_EXTENSIONS_PATH=os.environ.get(
                "LNBITS_EXTENSIONS_PATH", str(REPO / ".data" / "ext")
            ),
        )
        if database_url:
            env["LNBITS_DATABASE_URL"] = database_url
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = data_folder / "lnbits.log"

    def start(self, timeout: float = 90) -> LiveLnbits:
        self.data_folder.mkdir(parents=True, exist_ok=True)
        lnbits_bin = Path(sys.executable).with_name("lnbits")
        run_dir = os.environ.get("DAZNODE_RUN_DIR", str(REPO / ".data" / "run"))
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [str(lnbits_bin), "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=run_dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"LNbits exited early; see {self.log_path}")
            try:
                # 307 = up, redirecting to first install on a fresh database
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code in (200, 307):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"LNbits did not start within {timeout} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)

    def kill(self) -> None:
        """A crash: no shutdown hooks run, the lease is not released."""
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def fresh_database(name: str) -> str | None:
    """A fresh PostgreSQL database for a live server when the run is on PostgreSQL (None on
    SQLite). The name carries the run's data folder, so concurrent runs never share one."""
    if os.environ.get("DAZNODE_TEST_DB") != "postgres":
        return None
    run = Path(os.environ["LNBITS_DATA_FOLDER"]).name.replace("-", "_")
    out = subprocess.run(
        [str(REPO / "scripts" / "pg.sh"), "fresh", f"{name}_{run}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]
