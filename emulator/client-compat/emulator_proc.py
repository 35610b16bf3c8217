"""Starts sf-emulator over TLS for the Python-driven client suites (simple-salesforce, sf CLI)."""
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "testdata")
# The throwaway CA that signed testdata/tls-test-cert.pem (TEST ONLY, see testdata/README.md).
CA = os.path.join(TESTDATA, "tls-test-ca.pem")


def start_emulator(*extra):
    """Starts sf-emulator over TLS; returns (process, https base URL)."""
    binary = os.environ.get("SF_EMULATOR_BIN")
    if not binary or not os.path.exists(binary):
        raise RuntimeError(f"SF_EMULATOR_BIN must point at the sf-emulator binary (got {binary})")
    emu = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0",
         "--tls-cert", os.path.join(TESTDATA, "tls-test-cert.pem"),
         "--tls-key", os.path.join(TESTDATA, "tls-test-key.pem"), *extra],
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("SF_EMULATOR_LOG") else subprocess.DEVNULL,
        text=True,
    )
    line = emu.stdout.readline().strip()
    m = re.match(r"^listening on (https://\S+)$", line)
    if not m:
        emu.kill()
        raise RuntimeError(f"unexpected first line from sf-emulator: {line!r}")
    return emu, m.group(1)


def stop_emulator(emu):
    """Stops an emulator from start_emulator and closes its stdout pipe."""
    emu.terminate()
    emu.wait()
    emu.stdout.close()


def pubsub_address(emu):
    """The Pub/Sub API's HOST:PORT: the emulator's second stdout line (read it right after
    start_emulator, before anything else reads stdout)."""
    line = emu.stdout.readline().strip()
    m = re.match(r"^pubsub listening on (\S+)$", line)
    if not m:
        raise RuntimeError(f"unexpected second line from sf-emulator: {line!r}")
    return m.group(1)
