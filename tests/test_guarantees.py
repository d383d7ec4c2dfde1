"""The sync facade's promises from docs/guarantees.md: Ctrl-C and fork."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

CTRL_C_CHILD = """
import sys
from power_store import SessionStore

store = SessionStore.open(sys.argv[1], busy_timeout=60)
sid = store.create_session(session_id="s")
print("ready", flush=True)
sys.stdin.readline()  # the parent now holds the write lock
print("calling", flush=True)
try:
    store.append_message(sid, role="user", content="interrupted")
except KeyboardInterrupt:
    print("interrupted", flush=True)
else:
    print("not interrupted", flush=True)
sys.stdin.readline()  # the parent released the lock
store.close()  # waits for the interrupted write, which was already handed over
with SessionStore.open(sys.argv[1]) as again:
    print([m.content for m in again.load_all_messages(sid)], flush=True)
    print(again.append_message(sid, role="user", content="next"), flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_interrupts_the_wait_not_the_write(file_path: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD, file_path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    blocker = None
    try:
        assert proc.stdout.readline() == "ready\n"
        blocker = sqlite3.connect(file_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the child's write now waits in busy_timeout
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "calling\n"
        time.sleep(0.5)  # let the call reach its blocking wait (no outcome depends on timing)
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline() == "interrupted\n"
        blocker.execute("ROLLBACK")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if blocker is not None:
            blocker.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == 0, err
    # The interrupted write committed, whole, at seq 1; the store went on at seq 2.
    assert out.splitlines() == ["['interrupted']", "2"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_can_close_and_open_its_own_store(file_path: str) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        from power_store import FacadeMisuse, SessionStore
        store = SessionStore.open({file_path!r})
        store.create_session(session_id="parent")
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                store.append_message("parent", role="user", content="from the child")
                code = 3
            except FacadeMisuse:
                pass
            store.close()  # a no-op in the child: it must neither hang nor touch the parent
            with SessionStore.open({file_path!r}) as own:
                own.append_message("parent", role="user", content="child's own store")
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        store.append_message("parent", role="user", content="parent again")
        print([m.content for m in store.load_all_messages("parent")], flush=True)
        store.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[\"child's own store\", 'parent again']"
